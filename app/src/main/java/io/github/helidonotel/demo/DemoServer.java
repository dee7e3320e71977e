package io.github.helidonotel.demo;

import java.time.Duration;

import io.helidon.webclient.api.WebClient;
import io.helidon.webclient.api.WebClientConfig;
import io.helidon.webclient.tracing.WebClientTracing;
import io.helidon.webserver.WebServer;
import io.helidon.webserver.observe.ObserveFeature;
import io.helidon.webserver.observe.ObserveFeatureConfig;
import io.helidon.webserver.observe.health.HealthObserver;
import io.helidon.webserver.observe.tracing.TracingObserver;
import io.helidon.tracing.config.ComponentTracingConfig;
import io.helidon.tracing.config.SpanLogTracingConfig;
import io.helidon.tracing.config.SpanTracingConfig;
import io.helidon.tracing.config.TracingConfig;

/**
 * One running instance of the service: its telemetry, web server and client, started and stopped
 * in the right order. Used by {@link Main} and by tests that run several instances in one JVM
 * (which is why nothing here touches OpenTelemetry's global).
 */
public final class DemoServer implements AutoCloseable {
    private static final Duration CALL_TIMEOUT = Duration.ofSeconds(30);
    /**
     * How long a stop waits for requests in progress (Helidon's default is half a second, which
     * cut off /io_task, /random_sleep and /chain). With the 15 s span flush after it, this stays
     * within the unit's TimeoutStopSec of 30 s.
     */
    private static final Duration SHUTDOWN_GRACE = Duration.ofSeconds(10);
    /**
     * Server spans as the original's: without Helidon's extra content-read/content-write child
     * spans, so a chain is 7 spans. {@link TracedRoutes} names them after their route.
     */
    private static final TracingConfig SERVER_SPANS = TracingConfig.builder()
            .addComponent(ComponentTracingConfig.builder("web-server")
                                  .addSpan(SpanTracingConfig.builder("HTTP Request")
                                                   .addSpanLog(SpanLogTracingConfig.builder("content-read")
                                                                       .enabled(false).build())
                                                   .addSpanLog(SpanLogTracingConfig.builder("content-write")
                                                                       .enabled(false).build())
                                                   .build())
                                  .build())
            .build();

    private final Telemetry telemetry;
    private final WebServer server;

    private DemoServer(Telemetry telemetry, WebServer server) {
        this.telemetry = telemetry;
        this.server = server;
    }

    /**
     * Starts an instance; the caller owns {@code telemetry} only until this returns.
     *
     * @throws ServerStartException if the server is not running afterwards (its telemetry is
     *         closed by then)
     */
    public static DemoServer start(Settings settings, Telemetry telemetry) {
        WebClientConfig.Builder client = WebClient.builder()
                .servicesDiscoverServices(false)
                .readTimeout(CALL_TIMEOUT);
        ObserveFeatureConfig.Builder observe = ObserveFeature.builder()
                .observersDiscoverServices(false)
                .addObserver(HealthObserver.create());
        telemetry.helidonTracer().ifPresent(tracer -> {
            client.addService(WebClientTracing.create(tracer));
            // health is excluded from tracing by the observer's default path settings
            observe.addObserver(TracingObserver.builder().tracer(tracer).envConfig(SERVER_SPANS).build());
        });
        ChainService chain = new ChainService(client.build(),
                                              telemetry.openTelemetry().getPropagators().getTextMapPropagator(),
                                              settings.targetOne().baseUri(),
                                              settings.targetTwo().baseUri());
        WebServer server = WebServer.builder()
                .port(settings.port())
                .featuresDiscoverServices(false)
                .addFeature(observe.build())
                .shutdownHook(false)  // Main stops the server itself, then flushes spans
                .shutdownGracePeriod(SHUTDOWN_GRACE)
                .routing(routing -> routing.register(new DemoService()).register(chain))
                .build()
                .start();
        if (!server.isRunning()) {
            telemetry.close();
            throw new ServerStartException(settings.port());
        }
        return new DemoServer(telemetry, server);
    }

    /** The port the server listens on (useful when started on port 0). */
    public int port() {
        return server.port();
    }

    /**
     * Stops accepting requests, lets running ones finish (up to {@link #SHUTDOWN_GRACE}), then
     * exports what is left.
     */
    @Override
    public void close() {
        try {
            server.stop();
        } finally {
            telemetry.close();
        }
    }
}
