package io.github.helidonotel.demo;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.util.concurrent.TimeUnit;

import io.grpc.Server;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.StreamObserver;
import io.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;
import io.opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse;
import io.opentelemetry.proto.collector.trace.v1.TraceServiceGrpc;

/** OTLP/gRPC: the {@code TraceService} of opentelemetry-proto served by grpc-java on loopback. */
final class GrpcOtlpReceiver extends OtlpReceiver {
    private final Server server;

    private GrpcOtlpReceiver() {
        this.server = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
                .addService(new TraceServiceGrpc.TraceServiceImplBase() {
                    @Override
                    public void export(ExportTraceServiceRequest request,
                                       StreamObserver<ExportTraceServiceResponse> response) {
                        accept(request);
                        response.onNext(ExportTraceServiceResponse.getDefaultInstance());
                        response.onCompleted();
                    }
                })
                .build();
    }

    static GrpcOtlpReceiver start() {
        GrpcOtlpReceiver receiver = new GrpcOtlpReceiver();
        try {
            receiver.server.start();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return receiver;
    }

    /** The original's {@code host:port} form; the service must accept it. */
    @Override
    String endpoint() {
        return "127.0.0.1:" + port();
    }

    @Override
    int port() {
        return server.getPort();
    }

    @Override
    public void close() {
        server.shutdownNow();
        try {
            server.awaitTermination(5, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
