package io.github.helidonotel.demo;

import java.util.Optional;

import io.helidon.common.Weighted;
import io.helidon.http.HeaderName;
import io.helidon.http.HeaderNames;
import io.helidon.webserver.http.Filter;
import io.helidon.webserver.http.FilterChain;
import io.helidon.webserver.http.HttpFeature;
import io.helidon.webserver.http.HttpRouting;
import io.helidon.webserver.http.RoutingRequest;
import io.helidon.webserver.http.RoutingResponse;
import io.helidon.webserver.http.ServerRequest;
import io.helidon.webserver.http.ServerResponse;

import io.opentelemetry.api.OpenTelemetry;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.context.Context;
import io.opentelemetry.context.Scope;
import io.opentelemetry.context.propagation.TextMapPropagator;
import io.opentelemetry.instrumentation.api.instrumenter.Instrumenter;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

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
 *
 * <p>A malformed {@code traceparent} is ignored and the request served in a new trace, as W3C
 * Trace Context asks. OpenTelemetry's propagator does that without a word for most malformed
 * values (it logs only a wrong length, at JUL's FINE, without the value), so the filter logs one
 * line naming the value, in the new trace: a caller's broken propagation shows in the log.
 */
final class ServerTracing implements HttpFeature, Filter, Weighted {
    /**
     * Above every other filter, Helidon's access log (weight 1000) included: the span is current
     * while they run, so the access line carries the request's trace and span ids.
     */
    static final double WEIGHT = 2000;

    private static final Logger LOGGER = LoggerFactory.getLogger(ServerTracing.class);
    private static final HeaderName TRACEPARENT = HeaderNames.create("traceparent");
    /** A traceparent of version 00 has 55 characters: enough of a longer value to recognise it. */
    private static final int MAX_SHOWN_LENGTH = 100;

    private final Instrumenter<ServerRequest, ServerResponse> instrumenter;
    private final TextMapPropagator propagator;
    private final String untracedPath;
    private final String untracedPrefix;

    private ServerTracing(Instrumenter<ServerRequest, ServerResponse> instrumenter, TextMapPropagator propagator,
                          String untracedPath) {
        this.instrumenter = instrumenter;
        this.propagator = propagator;
        this.untracedPath = untracedPath;
        this.untracedPrefix = untracedPath + "/";
    }

    /** Server tracing with {@code openTelemetry}'s tracer and propagators, except under {@code untracedPath}. */
    static ServerTracing create(OpenTelemetry openTelemetry, String untracedPath) {
        ServerRequestAttributes attributes = ServerRequestAttributes.INSTANCE;
        return new ServerTracing(HttpServerInstrumenter.create(openTelemetry, ServerTracing.class.getPackageName(),
                                                               attributes, attributes),
                                 openTelemetry.getPropagators().getTextMapPropagator(), untracedPath);
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
        try (Scope ignored = context.makeCurrent()) {
            reportMalformedTraceparent(req);
            chain.proceed();
        } catch (RuntimeException | Error e) {
            // Helidon's error handlers answer a handler's exception inside the chain (a 500), so
            // an exception gets here only when Helidon could not answer and closes the connection
            // (e.g. the client left and writing the answer failed). The span ends without a
            // response then: the status the response holds may never have reached the client, and
            // the conventions name the exception's class in error.type instead.
            instrumenter.end(context, req, null, e);
            throw e;
        }
        instrumenter.end(context, req, res, null);
    }

    /** Extracts the caller's context once more, only when it sent a traceparent, to tell whether it was taken. */
    private void reportMalformedTraceparent(ServerRequest req) {
        Optional<String> traceparent = req.headers().first(TRACEPARENT);
        if (traceparent.isEmpty()) {
            return;
        }
        Context callers = propagator.extract(Context.root(), req, ServerRequestAttributes.INSTANCE);
        if (!Span.fromContext(callers).getSpanContext().isValid()) {
            LOGGER.warn("malformed traceparent '{}' ignored: the request starts a new trace",
                        printable(traceparent.get()));
        }
    }

    /** The header's value cut short and without control characters, so that it cannot forge log lines. */
    private static String printable(String value) {
        String shown = value.length() > MAX_SHOWN_LENGTH ? value.substring(0, MAX_SHOWN_LENGTH) + "..." : value;
        return shown.replaceAll("\\p{Cntrl}", "?");
    }

    private boolean isUntraced(String path) {
        return path.startsWith(untracedPrefix) || path.equals(untracedPath);
    }
}
