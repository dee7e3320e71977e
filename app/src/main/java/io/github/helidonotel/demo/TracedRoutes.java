package io.github.helidonotel.demo;

import io.helidon.webserver.http.Handler;
import io.helidon.webserver.http.HttpRules;

import io.opentelemetry.api.trace.Span;
import io.opentelemetry.context.Context;
import io.opentelemetry.instrumentation.api.semconv.http.HttpServerRoute;
import io.opentelemetry.instrumentation.api.semconv.http.HttpServerRouteSource;

/**
 * Registers GET routes whose server span is named after the route, {@code GET /items/{item_id}},
 * with the route in {@code http.route}, as OpenTelemetry's HTTP conventions and the original's
 * FastAPI instrumentation have it (not the raw path, which would make every item id its own
 * operation in Jaeger and its own series in the span metrics).
 *
 * <p>{@link ServerTracing} starts the span in a filter, before Helidon has matched a route, so the
 * span is named by method alone ({@code GET}, kept by requests that match no route) until the
 * handler of a route tells instrumentation-api its route. Without tracing (MODE=none) the context
 * holds no server span and the update does nothing.
 *
 * <p>An exception a handler throws is recorded on the server span here, where it is still in hand:
 * Helidon's error handling answers it inside the filter chain (a 500, or a closed connection when
 * the answer could not be written), so the tracing filter sees at most Helidon's own exception,
 * which does not carry the handler's as its cause.
 */
final class TracedRoutes {
    private final HttpRules rules;

    private TracedRoutes(HttpRules rules) {
        this.rules = rules;
    }

    static TracedRoutes on(HttpRules rules) {
        return new TracedRoutes(rules);
    }

    TracedRoutes get(String route, Handler handler) {
        rules.get(route, (req, res) -> {
            HttpServerRoute.update(Context.current(), HttpServerRouteSource.SERVER, route);
            try {
                handler.handle(req, res);
            } catch (Exception | Error e) {
                Span.current().recordException(e);
                throw e;
            }
        });
        return this;
    }
}
