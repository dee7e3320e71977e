package io.github.helidonotel.demo;

import java.util.List;

import io.helidon.webclient.api.WebClientServiceRequest;
import io.helidon.webclient.api.WebClientServiceResponse;

import io.opentelemetry.context.propagation.TextMapSetter;
import io.opentelemetry.instrumentation.api.semconv.http.HttpClientAttributesGetter;

/**
 * What OpenTelemetry's HTTP client conventions read from a Helidon WebClient call, and where the
 * propagator writes {@code traceparent}: the call's request headers.
 */
enum ClientRequestAttributes implements HttpClientAttributesGetter<WebClientServiceRequest, WebClientServiceResponse>,
        TextMapSetter<WebClientServiceRequest> {
    INSTANCE;

    @Override
    public String getHttpRequestMethod(WebClientServiceRequest request) {
        return request.method().text();
    }

    @Override
    public List<String> getHttpRequestHeader(WebClientServiceRequest request, String name) {
        return request.headers().all(HeaderNameCache.of(name), List::of);
    }

    @Override
    public Integer getHttpResponseStatusCode(WebClientServiceRequest request, WebClientServiceResponse response,
                                             Throwable error) {
        return response.status().code();
    }

    @Override
    public List<String> getHttpResponseHeader(WebClientServiceRequest request, WebClientServiceResponse response,
                                              String name) {
        return response.headers().all(HeaderNameCache.of(name), List::of);
    }

    @Override
    public String getUrlFull(WebClientServiceRequest request) {
        return request.uri().toUri().toString();
    }

    @Override
    public String getServerAddress(WebClientServiceRequest request) {
        return request.uri().host();
    }

    @Override
    public Integer getServerPort(WebClientServiceRequest request) {
        return request.uri().port();
    }

    @Override
    public void set(WebClientServiceRequest request, String key, String value) {
        if (request != null) {
            request.headers().set(HeaderNameCache.of(key), value);
        }
    }
}
