package io.github.helidonotel.demo;

import io.helidon.webclient.api.WebClientServiceRequest;
import io.helidon.webclient.api.WebClientServiceResponse;
import io.helidon.webclient.spi.WebClientService;

import io.opentelemetry.api.OpenTelemetry;
import io.opentelemetry.context.Context;
import io.opentelemetry.context.Scope;
import io.opentelemetry.instrumentation.api.instrumenter.Instrumenter;
import io.opentelemetry.instrumentation.api.semconv.http.HttpClientAttributesExtractor;
import io.opentelemetry.instrumentation.api.semconv.http.HttpSpanNameExtractor;
import io.opentelemetry.instrumentation.api.semconv.http.HttpSpanStatusExtractor;

/**
 * A CLIENT span per WebClient call, child of the current context (the request's server span, see
 * {@link ServerTracing}), with {@code traceparent} injected into the call; made by OpenTelemetry's
 * {@link Instrumenter} with its HTTP client conventions, so a 4xx or 5xx answer marks the span
 * ERROR. (Helidon 4.1's client tracing sets no status at all, and parents its spans through
 * Helidon's request context rather than OpenTelemetry's current one.)
 */
final class ClientTracing implements WebClientService {
    private final Instrumenter<WebClientServiceRequest, WebClientServiceResponse> instrumenter;

    private ClientTracing(Instrumenter<WebClientServiceRequest, WebClientServiceResponse> instrumenter) {
        this.instrumenter = instrumenter;
    }

    /** Client tracing with {@code openTelemetry}'s tracer and propagators. */
    static ClientTracing create(OpenTelemetry openTelemetry) {
        ClientRequestAttributes attributes = ClientRequestAttributes.INSTANCE;
        return new ClientTracing(Instrumenter
                .<WebClientServiceRequest, WebClientServiceResponse>builder(
                        openTelemetry, ClientTracing.class.getPackageName(), HttpSpanNameExtractor.create(attributes))
                .setSpanStatusExtractor(HttpSpanStatusExtractor.create(attributes))
                .addAttributesExtractor(HttpClientAttributesExtractor.create(attributes))
                .buildClientInstrumenter(attributes));
    }

    @Override
    public String type() {
        return "opentelemetry-tracing";
    }

    @Override
    public WebClientServiceResponse handle(Chain chain, WebClientServiceRequest request) {
        Context parent = Context.current();
        if (!instrumenter.shouldStart(parent, request)) {
            return chain.proceed(request);
        }
        Context context = instrumenter.start(parent, request);
        try (Scope ignored = context.makeCurrent()) {
            WebClientServiceResponse response = chain.proceed(request);
            instrumenter.end(context, request, response, null);
            return response;
        } catch (RuntimeException | Error e) {
            instrumenter.end(context, request, null, e);
            throw e;
        }
    }
}
