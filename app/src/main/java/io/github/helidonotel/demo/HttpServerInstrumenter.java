package io.github.helidonotel.demo;

import io.opentelemetry.api.OpenTelemetry;
import io.opentelemetry.context.propagation.TextMapGetter;
import io.opentelemetry.instrumentation.api.instrumenter.Instrumenter;
import io.opentelemetry.instrumentation.api.semconv.http.HttpServerAttributesExtractor;
import io.opentelemetry.instrumentation.api.semconv.http.HttpServerAttributesGetter;
import io.opentelemetry.instrumentation.api.semconv.http.HttpServerRoute;
import io.opentelemetry.instrumentation.api.semconv.http.HttpSpanNameExtractor;
import io.opentelemetry.instrumentation.api.semconv.http.HttpSpanStatusExtractor;

/**
 * How the service's SERVER spans are made: instrumentation-api's {@link Instrumenter} with the HTTP
 * server conventions for the span's name, status and attributes, and the route set later by
 * {@link HttpServerRoute}. {@link ServerTracing} builds it over Helidon's requests; it is public so
 * that the benchmark's floor ({@code scripts/SpanCostFloor.java}) builds the very same over a map
 * of headers, and measures what the service would pay, not a copy of it that could drift.
 */
public final class HttpServerInstrumenter {
    private HttpServerInstrumenter() {
    }

    /**
     * A SERVER span instrumenter named {@code instrumentationName}, reading the conventions' values
     * through {@code attributes} and the caller's context ({@code traceparent}) through {@code headers}.
     */
    public static <REQUEST, RESPONSE> Instrumenter<REQUEST, RESPONSE> create(
            OpenTelemetry openTelemetry, String instrumentationName,
            HttpServerAttributesGetter<REQUEST, RESPONSE> attributes, TextMapGetter<REQUEST> headers) {
        return Instrumenter
                .<REQUEST, RESPONSE>builder(openTelemetry, instrumentationName, HttpSpanNameExtractor.create(attributes))
                .setSpanStatusExtractor(HttpSpanStatusExtractor.create(attributes))
                .addAttributesExtractor(HttpServerAttributesExtractor.create(attributes))
                .addContextCustomizer(HttpServerRoute.create(attributes))
                .buildServerInstrumenter(headers);
    }
}
