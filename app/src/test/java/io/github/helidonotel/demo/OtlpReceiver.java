package io.github.helidonotel.demo;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Predicate;

import io.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;

/**
 * A real OTLP trace receiver on loopback, as the Collector or Jaeger would be: the service under
 * test exports to it over the network with its real exporter. Subclasses speak gRPC or HTTP.
 */
abstract class OtlpReceiver implements AutoCloseable {
    private final List<ReceivedSpan> spans = new CopyOnWriteArrayList<>();

    /** Starts a receiver that speaks {@code protocol}. */
    static OtlpReceiver start(ExportMode.Protocol protocol) {
        return switch (protocol) {
            case GRPC -> GrpcOtlpReceiver.start();
            case HTTP -> HttpOtlpReceiver.start();
            case NONE -> throw new IllegalArgumentException("nothing to receive");
        };
    }

    /** The value of the mode's endpoint variable that points the exporter here. */
    abstract String endpoint();

    /** Port the receiver listens on. */
    abstract int port();

    protected void accept(ExportTraceServiceRequest request) {
        spans.addAll(ReceivedSpan.from(request));
    }

    List<ReceivedSpan> spans() {
        return List.copyOf(spans);
    }

    List<ReceivedSpan> spansOfTrace(String traceId) {
        return spans.stream().filter(span -> span.traceId().equals(traceId)).toList();
    }

    /** Waits (bounded) until {@code condition} holds for the spans received so far. */
    List<ReceivedSpan> await(Predicate<List<ReceivedSpan>> condition, Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (System.nanoTime() < deadline) {
            List<ReceivedSpan> now = spans();
            if (condition.test(now)) {
                return now;
            }
            Thread.sleep(50);
        }
        throw new AssertionError("condition not met within " + timeout + "; received: " + spans());
    }

    @Override
    public abstract void close();
}
