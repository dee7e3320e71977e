import java.lang.management.ManagementFactory;
import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import com.sun.management.OperatingSystemMXBean;

import io.github.helidonotel.demo.HttpServerInstrumenter;
import io.github.helidonotel.demo.Settings;
import io.github.helidonotel.demo.Telemetry;

import io.opentelemetry.api.OpenTelemetry;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.SpanKind;
import io.opentelemetry.api.trace.Tracer;
import io.opentelemetry.context.Context;
import io.opentelemetry.context.Scope;
import io.opentelemetry.context.propagation.TextMapGetter;
import io.opentelemetry.context.propagation.TextMapPropagator;
import io.opentelemetry.instrumentation.api.instrumenter.Instrumenter;
import io.opentelemetry.instrumentation.api.semconv.http.HttpServerAttributesGetter;
import io.opentelemetry.instrumentation.api.semconv.http.HttpServerRoute;
import io.opentelemetry.instrumentation.api.semconv.http.HttpServerRouteSource;
import io.opentelemetry.sdk.OpenTelemetrySdk;

/**
 * The CPU time the OpenTelemetry SDK alone spends per span, as the service configures it, with no
 * HTTP server, no Helidon and no logging around it: a floor under what tracing can cost a request;
 * and the same with the span made by instrumentation-api's {@link Instrumenter}, as the service
 * makes it: the floor under the service's own way of tracing.
 *
 * <p>Each "request" does what the service's tracing does for a request to {@code /} that carries
 * no {@code traceparent}: extract a context from its headers, start a SERVER span with the
 * attributes the service's ServerTracing records (OpenTelemetry's HTTP server conventions), make
 * it current while the handler renames it and adds {@code http.route}, set the response status
 * code (the span status stays unset for a 200), end it. The SDK is the
 * service's own, built by {@link Telemetry#create} from the same environment variables as
 * scripts/bench.sh's variants:
 * <ul>
 *   <li>{@code unsampled}: {@code OTEL_TRACES_SAMPLER=always_off}, spans that record nothing;</li>
 *   <li>{@code recorded}: every span recorded, then dropped by a one-span queue while the exporter
 *       waits out its retries against a closed port (as scripts/bench.sh's variant);</li>
 *   <li>{@code exported}: every span recorded and exported over OTLP/HTTP to the given sink;</li>
 *   <li>{@code instrumented}: as {@code exported}, but each span made by OpenTelemetry's
 *       instrumentation-api {@link Instrumenter}, the service's own ({@link HttpServerInstrumenter},
 *       which its ServerTracing builds; the route set through {@link HttpServerRoute}), over a request that
 *       is a map of wrk's headers instead of Helidon's: the floor under the service's own way of
 *       tracing a request, of which the SDK's share is the {@code exported} figure.</li>
 * </ul>
 * The figure is the whole process's CPU time (so the export threads, the GC and the JIT are in
 * it) divided by the spans. Exported spans are made in batches of the export batch size, each
 * followed by a flush, so the queue never overflows: a dropped span was never encoded or sent,
 * and would flatter the figure. Variants take turns for several rounds, as the VM's speed drifts,
 * each round in a new random order (a fixed order would give each the same neighbours every
 * round); the median of each is printed, one line per variant: {@code <variant> <µs per span>}, then
 * {@code batches <n>}, the batches of the exported variant, warm-up run included, that went
 * through the exporter: the exports the sink should have received.
 *
 * <p>Run with the service's jar on the class path and the unit's JVM options (scripts/bench.sh
 * does): {@code java <options> -cp app/target/app.jar scripts/SpanCostFloor.java <sink URL>
 * <closed URL> <spans per run> <rounds>}.
 */
public final class SpanCostFloor {
    /** The service's export batch size (Settings' default): the size of every export under load. */
    private static final int BATCH = 512;
    private static final TextMapGetter<Map<String, String>> HEADERS =
            (carrier, key) -> carrier == null ? null : carrier.get(key);
    /** What wrk sends: no trace context, so every request starts a trace. */
    private static final Map<String, String> REQUEST_HEADERS = Map.of("host", "127.0.0.1:18101", "accept", "*/*");

    /** The peer every request comes from, made once: the service's getter returns Helidon's. */
    private static final InetSocketAddress PEER = new InetSocketAddress("127.0.0.1", 40000);

    private final String name;
    private final boolean exports;
    private final OpenTelemetrySdk sdk;
    private final Tracer tracer;
    private final TextMapPropagator propagator;
    private final Runnable request;
    private final List<Double> microsPerSpan = new ArrayList<>();
    private int exportedBatches;

    private SpanCostFloor(String name, boolean exports, boolean instrumented, Map<String, String> env) {
        this.name = name;
        this.exports = exports;
        OpenTelemetry openTelemetry = Telemetry.create(Settings.fromEnvironment(env), "floor").openTelemetry();
        // Not MODE=none, so Telemetry built an SDK; the flush below needs it.
        this.sdk = (OpenTelemetrySdk) openTelemetry;
        this.tracer = openTelemetry.getTracer("span-cost-floor");
        this.propagator = openTelemetry.getPropagators().getTextMapPropagator();
        this.request = instrumented ? instrumentedRequest(openTelemetry) : this::request;
    }

    public static void main(String[] args) {
        String sink = args[0];
        String closed = args[1];
        int spans = Integer.parseInt(args[2]);
        int rounds = Integer.parseInt(args[3]);
        List<SpanCostFloor> variants = List.of(
                new SpanCostFloor("unsampled", false, false,
                                  Map.of("MODE", "otel-collector-http", "OTEL_HTTP_ENDPOINT", closed,
                                         "OTEL_TRACES_SAMPLER", "always_off")),
                new SpanCostFloor("recorded", false, false,
                                  Map.of("MODE", "otel-collector-http", "OTEL_HTTP_ENDPOINT", closed,
                                         "OTEL_BSP_MAX_QUEUE_SIZE", "1", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "1")),
                new SpanCostFloor("exported", true, false,
                                  Map.of("MODE", "otel-collector-http", "OTEL_HTTP_ENDPOINT", sink)),
                new SpanCostFloor("instrumented", true, true,
                                  Map.of("MODE", "otel-collector-http", "OTEL_HTTP_ENDPOINT", sink)));
        for (SpanCostFloor variant : variants) {  // JIT warm-up
            variant.run(spans);
        }
        List<SpanCostFloor> order = new ArrayList<>(variants);
        for (int round = 0; round < rounds; round++) {
            Collections.shuffle(order);
            for (SpanCostFloor variant : order) {
                variant.microsPerSpan.add(variant.run(spans));
            }
        }
        for (SpanCostFloor variant : variants) {
            System.out.printf("%s %.1f%n", variant.name, median(variant.microsPerSpan));
        }
        System.out.printf("batches %d%n", variants.stream().mapToInt(variant -> variant.exportedBatches).sum());
        // Nothing to close: every exported batch was flushed, and closing the recorded variant's
        // SDK would wait out its exporter's retries against the closed port.
    }

    /**
     * Makes {@code spans} spans, rounded up to whole batches; returns the process's CPU time per
     * span made, in µs.
     */
    private double run(int spans) {
        long cpuBefore = processCpuNanos();
        int made = 0;
        while (made < spans) {
            for (int i = 0; i < BATCH; i++) {
                request.run();
            }
            made += BATCH;
            if (exports) {
                // Waits until the batch has been through the exporter. (The other variants queue
                // nothing to wait for: the one-span queue drops what does not fit, and its exporter
                // waits out its retries.) The flush succeeds even when the export failed, so
                // scripts/bench.sh compares the exports the sink received with the batches made.
                if (!sdk.getSdkTracerProvider().forceFlush().join(10, TimeUnit.SECONDS).isSuccess()) {
                    throw new IllegalStateException(name + ": a batch was not flushed within 10 s");
                }
                exportedBatches++;
            }
        }
        return (processCpuNanos() - cpuBefore) / 1000.0 / made;
    }

    /** The median of {@code values}: the mean of the two middle ones for an even count. */
    private static double median(List<Double> values) {
        List<Double> sorted = new ArrayList<>(values);
        Collections.sort(sorted);
        int middle = sorted.size() / 2;
        return sorted.size() % 2 == 1 ? sorted.get(middle) : (sorted.get(middle - 1) + sorted.get(middle)) / 2;
    }

    /** The tracing of one request to {@code /}, in the order the service's filter and handler do it. */
    private void request() {
        Context parent = propagator.extract(Context.root(), REQUEST_HEADERS, HEADERS);
        Span span = tracer.spanBuilder("GET")
                .setParent(parent)
                .setSpanKind(SpanKind.SERVER)
                .setAttribute("http.request.method", "GET")
                .setAttribute("url.scheme", "http")
                .setAttribute("url.path", "/")
                .setAttribute("network.protocol.version", "1.1")
                .setAttribute("server.address", "127.0.0.1")
                .setAttribute("server.port", 18101L)
                .setAttribute("client.address", "127.0.0.1")
                .startSpan();
        try (Scope ignored = span.makeCurrent()) {
            Span.current().updateName("GET /").setAttribute("http.route", "/");
        }
        span.setAttribute("http.response.status_code", 200L);
        span.end();
    }

    /**
     * The same request through the service's own {@link HttpServerInstrumenter} (as its ServerTracing
     * builds it), used as that filter (start, current context, end with the status) and its route registration
     * ({@code TracedRoutes}) use it.
     */
    private static Runnable instrumentedRequest(OpenTelemetry openTelemetry) {
        RequestMap attributes = RequestMap.INSTANCE;
        Instrumenter<Map<String, String>, Integer> instrumenter =
                HttpServerInstrumenter.create(openTelemetry, "span-cost-floor", attributes, HEADERS);
        return () -> {
            Context parent = Context.root();
            if (!instrumenter.shouldStart(parent, REQUEST_HEADERS)) {
                throw new IllegalStateException("the Instrumenter declined a request with no span around it");
            }
            Context context = instrumenter.start(parent, REQUEST_HEADERS);
            try (Scope ignored = context.makeCurrent()) {
                HttpServerRoute.update(Context.current(), HttpServerRouteSource.SERVER, "/");
            }
            instrumenter.end(context, REQUEST_HEADERS, 200, null);
        };
    }

    /**
     * Where the HTTP server conventions find their values in a request that is a map of headers:
     * what the service's ServerRequestAttributes reads from Helidon for wrk's {@code GET /}.
     */
    private enum RequestMap implements HttpServerAttributesGetter<Map<String, String>, Integer> {
        INSTANCE;

        @Override
        public String getHttpRequestMethod(Map<String, String> request) {
            return "GET";
        }

        @Override
        public List<String> getHttpRequestHeader(Map<String, String> request, String name) {
            String value = request.get(name);
            return value == null ? List.of() : List.of(value);
        }

        @Override
        public Integer getHttpResponseStatusCode(Map<String, String> request, Integer status, Throwable error) {
            return status;
        }

        @Override
        public List<String> getHttpResponseHeader(Map<String, String> request, Integer status, String name) {
            return List.of();
        }

        @Override
        public String getUrlScheme(Map<String, String> request) {
            return "http";
        }

        @Override
        public String getUrlPath(Map<String, String> request) {
            return "/";
        }

        @Override
        public String getUrlQuery(Map<String, String> request) {
            return null;
        }

        @Override
        public String getNetworkProtocolName(Map<String, String> request, Integer status) {
            return "http";
        }

        @Override
        public String getNetworkProtocolVersion(Map<String, String> request, Integer status) {
            return "1.1";
        }

        @Override
        public InetSocketAddress getNetworkPeerInetSocketAddress(Map<String, String> request, Integer status) {
            return PEER;
        }
    }

    private static long processCpuNanos() {
        return ((OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean()).getProcessCpuTime();
    }
}
