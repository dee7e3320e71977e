package io.github.helidonotel.demo;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import io.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;
import io.opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse;

/** OTLP/HTTP: {@code POST /v1/traces} with a protobuf {@code ExportTraceServiceRequest}, on loopback. */
final class HttpOtlpReceiver extends OtlpReceiver {
    private final HttpServer server;
    private final ExecutorService executor = Executors.newFixedThreadPool(2);

    private HttpOtlpReceiver() {
        try {
            this.server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        server.createContext("/v1/traces", this::handle);
        server.setExecutor(executor);
    }

    static HttpOtlpReceiver start() {
        HttpOtlpReceiver receiver = new HttpOtlpReceiver();
        receiver.server.start();
        return receiver;
    }

    private void handle(HttpExchange exchange) throws IOException {
        try (exchange; InputStream body = exchange.getRequestBody()) {
            String contentType = exchange.getRequestHeaders().getFirst("Content-Type");
            if (!"POST".equals(exchange.getRequestMethod()) || !"application/x-protobuf".equals(contentType)) {
                exchange.sendResponseHeaders(415, -1);
                return;
            }
            accept(ExportTraceServiceRequest.parseFrom(body));
            byte[] response = ExportTraceServiceResponse.getDefaultInstance().toByteArray();
            exchange.getResponseHeaders().set("Content-Type", "application/x-protobuf");
            exchange.sendResponseHeaders(200, response.length == 0 ? -1 : response.length);
            exchange.getResponseBody().write(response);
        }
    }

    @Override
    String endpoint() {
        return "http://127.0.0.1:" + port() + "/v1/traces";
    }

    @Override
    int port() {
        return server.getAddress().getPort();
    }

    @Override
    public void close() {
        server.stop(0);
        executor.shutdownNow();
    }
}
