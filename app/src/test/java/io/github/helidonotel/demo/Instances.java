package io.github.helidonotel.demo;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.HexFormat;
import java.util.concurrent.ThreadLocalRandom;

/** Helpers shared by tests that run real instances and talk HTTP to them. */
final class Instances {
    private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    private Instances() {
    }

    /** A port that was free a moment ago (the chain's self-call needs the port before start). */
    static int freePort() {
        try (ServerSocket socket = new ServerSocket(0)) {
            return socket.getLocalPort();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** GET {@code path} on loopback {@code port}, with optional extra header name/value pairs. */
    static HttpResponse<String> get(int port, String path, String... headers) throws IOException, InterruptedException {
        HttpRequest.Builder request = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
                .timeout(Duration.ofSeconds(30));
        if (headers.length > 0) {
            request.headers(headers);
        }
        return HTTP.send(request.build(), HttpResponse.BodyHandlers.ofString());
    }

    /**
     * Waits until the instance on loopback {@code port} answers its health check with 2xx; false
     * when it has not within {@code wait} (the caller says what to show then).
     */
    static boolean awaitHealthy(int port, Duration wait) throws InterruptedException {
        long deadline = System.nanoTime() + wait.toNanos();
        while (System.nanoTime() < deadline) {
            try {
                if (get(port, "/observe/health").statusCode() / 100 == 2) {
                    return true;
                }
            } catch (IOException notYetListening) {
                // retry until the deadline
            }
            Thread.sleep(200);
        }
        return false;
    }

    /** A fresh, valid W3C trace id (32 lower-case hex digits, not all zero). */
    static String newTraceId() {
        byte[] bytes = new byte[16];
        ThreadLocalRandom.current().nextBytes(bytes);
        bytes[0] |= 0x10;
        return HexFormat.of().formatHex(bytes);
    }

    /** A {@code traceparent} of a sampled caller span in trace {@code traceId}. */
    static String traceparent(String traceId, String parentSpanId) {
        return "00-" + traceId + "-" + parentSpanId + "-01";
    }
}
