package io.github.helidonotel.demo;

import java.time.Duration;

import java.util.Optional;

import io.helidon.webclient.api.WebClient;
import io.helidon.webclient.api.WebClientConfig;
import io.helidon.webserver.WebServer;
import io.helidon.webserver.accesslog.AccessLogFeature;
import io.helidon.webserver.observe.ObserveFeature;
import io.helidon.webserver.observe.health.HealthObserver;

import io.opentelemetry.api.OpenTelemetry;

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
    /** Where Helidon serves health; requests under it are not traced. */
    private static final String OBSERVE_ENDPOINT = "/observe";
    /**
     * One access line per request, as uvicorn wrote: client address, request line, status, bytes
     * sent, microseconds taken. It goes through logback like every other line, and is written
     * while the request's server span is current ({@link ServerTracing#WEIGHT}), so it carries the
     * request's trace and span ids. Health checks get one too (with trace_id=0): an access log
     * that leaves requests out misleads, and they are rare (a deploy's readiness wait).
     */
    private static final String ACCESS_LINE_FORMAT = "%h %r %s %b %D";

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
        // MODE=none installs no tracing at all, so a baseline pays for no part of it.
        Optional<OpenTelemetry> tracing = telemetry.tracing();
        tracing.ifPresent(openTelemetry -> client.addService(ClientTracing.create(openTelemetry)));
        Optional<ServerTracing> serverTracing = tracing.map(
                openTelemetry -> ServerTracing.create(openTelemetry, OBSERVE_ENDPOINT));
        ChainService chain = new ChainService(client.build(),
                                              telemetry.openTelemetry().getPropagators().getTextMapPropagator(),
                                              settings.targetOne().baseUri(),
                                              settings.targetTwo().baseUri());
        try {
            WebServer server = startServer(settings, serverTracing, chain);
            if (!server.isRunning()) {
                throw new ServerStartException(settings.port());
            }
            return new DemoServer(telemetry, server);
        } catch (RuntimeException | Error e) {
            // Whether the server is not running or its build or start threw, the exporter's
            // threads must not outlive it.
            telemetry.close();
            throw e;
        }
    }

    private static WebServer startServer(Settings settings, Optional<ServerTracing> serverTracing,
                                         ChainService chain) {
        return WebServer.builder()
                .port(settings.port())
                // Under a flood: requests beyond the limit get a 503 at once (Helidon answers it
                // before routing, then closes the connection), connections beyond theirs wait in
                // the accept queue; so neither can pile up in the heap.
                .maxConcurrentRequests(settings.maxConcurrentRequests())
                .maxTcpConnections(settings.maxTcpConnections())
                .featuresDiscoverServices(false)
                .addFeature(ObserveFeature.builder()
                                    .endpoint(OBSERVE_ENDPOINT)
                                    .observersDiscoverServices(false)
                                    .addObserver(HealthObserver.create())
                                    .build())
                .addFeature(AccessLogFeature.builder().format(ACCESS_LINE_FORMAT).build())
                .shutdownHook(false)  // Main stops the server itself, then flushes spans
                .shutdownGracePeriod(SHUTDOWN_GRACE)
                .routing(routing -> {
                    serverTracing.ifPresent(routing::addFeature);
                    routing.register(new DemoService()).register(chain);
                })
                .build()
                .start();
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
