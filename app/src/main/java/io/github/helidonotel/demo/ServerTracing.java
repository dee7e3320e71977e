package io.github.helidonotel.demo;

import io.helidon.common.Weighted;
import io.helidon.webserver.http.Filter;
import io.helidon.webserver.http.FilterChain;
import io.helidon.webserver.http.HttpFeature;
import io.helidon.webserver.http.HttpRouting;
import io.helidon.webserver.http.RoutingRequest;
import io.helidon.webserver.http.RoutingResponse;
import io.helidon.webserver.http.ServerRequest;
import io.helidon.webserver.http.ServerResponse;

import io.opentelemetry.api.OpenTelemetry;
import io.opentelemetry.context.Context;
import io.opentelemetry.context.Scope;
import io.opentelemetry.instrumentation.api.instrumenter.Instrumenter;

/**
 * A SERVER span per request, made by OpenTelemetry's {@link Instrumenter} with its HTTP server
 * conventions: the caller's {@code traceparent} continued, the span named {@code GET} until a
 * route names it ({@link TracedRoutes}), its status ERROR for 5xx only (a 4xx is the client's
 * error and leaves a server span's status unset). Helidon 4.1's own tracing observer marks every
 * status from 400 up as an error, which counted 404s and 422s in Jaeger's error rates, and offers
 * no way to change that.
 *
 * <p>The span is the current context while the rest of the request runs (filters, handler), so
 * that log lines carry its ids and {@link ClientTracing}'s calls become its children. Requests
 * under {@code untracedPath} (the health endpoint) get no span.
 */
final class ServerTracing implements HttpFeature, Filter, Weighted {
    /**
     * Above every other filter, Helidon's access log (weight 1000) included: the span is current
     * while they run, so the access line carries the request's trace and span ids.
     */
    static final double WEIGHT = 2000;

    private final Instrumenter<ServerRequest, ServerResponse> instrumenter;
    private final String untracedPath;
    private final String untracedPrefix;

    private ServerTracing(Instrumenter<ServerRequest, ServerResponse> instrumenter, String untracedPath) {
        this.instrumenter = instrumenter;
        this.untracedPath = untracedPath;
        this.untracedPrefix = untracedPath + "/";
    }

    /** Server tracing with {@code openTelemetry}'s tracer and propagators, except under {@code untracedPath}. */
    static ServerTracing create(OpenTelemetry openTelemetry, String untracedPath) {
        ServerRequestAttributes attributes = ServerRequestAttributes.INSTANCE;
        return new ServerTracing(HttpServerInstrumenter.create(openTelemetry, ServerTracing.class.getPackageName(),
                                                               attributes, attributes),
                                 untracedPath);
    }

    @Override
    public void setup(HttpRouting.Builder routing) {
        routing.addFilter(this);
    }

    @Override
    public double weight() {
        return WEIGHT;
    }

    @Override
    public void filter(FilterChain chain, RoutingRequest req, RoutingResponse res) {
        Context parent = Context.current();
        if (isUntraced(req.prologue().uriPath().path()) || !instrumenter.shouldStart(parent, req)) {
            chain.proceed();
            return;
        }
        Context context = instrumenter.start(parent, req);
        Throwable error = null;
        try (Scope ignored = context.makeCurrent()) {
            // Helidon's error handlers answer a handler's exception inside the chain (a 500), so
            // an exception gets here only when Helidon itself failed to answer.
            chain.proceed();
        } catch (RuntimeException | Error e) {
            error = e;
            throw e;
        } finally {
            instrumenter.end(context, req, res, error);
        }
    }

    private boolean isUntraced(String path) {
        return path.startsWith(untracedPrefix) || path.equals(untracedPath);
    }
}
