package io.github.helidonotel.demo;

import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.util.List;

import io.helidon.webserver.http.ServerRequest;
import io.helidon.webserver.http.ServerResponse;

import io.opentelemetry.context.propagation.TextMapGetter;
import io.opentelemetry.instrumentation.api.semconv.http.HttpServerAttributesGetter;

/**
 * What OpenTelemetry's HTTP server conventions read from a Helidon request and response, and the
 * request's headers for context extraction ({@code traceparent}). The conventions themselves (which
 * attributes, span name, status) are instrumentation-api's; this only says where Helidon keeps the
 * values. The local address is left out: Helidon asks the socket for it on every call (a
 * {@code getsockname}), which was a third of its own tracing observer's cost.
 */
enum ServerRequestAttributes implements HttpServerAttributesGetter<ServerRequest, ServerResponse>,
        TextMapGetter<ServerRequest> {
    INSTANCE;

    @Override
    public String getHttpRequestMethod(ServerRequest request) {
        return request.prologue().method().text();
    }

    @Override
    public List<String> getHttpRequestHeader(ServerRequest request, String name) {
        return request.headers().all(HeaderNameCache.of(name), List::of);
    }

    @Override
    public Integer getHttpResponseStatusCode(ServerRequest request, ServerResponse response, Throwable error) {
        return response.status().code();
    }

    @Override
    public List<String> getHttpResponseHeader(ServerRequest request, ServerResponse response, String name) {
        return response.headers().all(HeaderNameCache.of(name), List::of);
    }

    @Override
    public String getUrlScheme(ServerRequest request) {
        return request.isSecure() ? "https" : "http";
    }

    @Override
    public String getUrlPath(ServerRequest request) {
        return request.prologue().uriPath().rawPath();
    }

    @Override
    public String getUrlQuery(ServerRequest request) {
        String query = request.prologue().query().rawValue();
        return query.isEmpty() ? null : query;
    }

    @Override
    public String getNetworkProtocolName(ServerRequest request, ServerResponse response) {
        return "http";
    }

    @Override
    public String getNetworkProtocolVersion(ServerRequest request, ServerResponse response) {
        return request.prologue().protocolVersion();
    }

    @Override
    public InetSocketAddress getNetworkPeerInetSocketAddress(ServerRequest request, ServerResponse response) {
        SocketAddress peer = request.remotePeer().address();
        return peer instanceof InetSocketAddress address ? address : null;
    }

    @Override
    public Iterable<String> keys(ServerRequest request) {
        return request.headers().stream().map(header -> header.name()).toList();
    }

    @Override
    public String get(ServerRequest request, String key) {
        return request == null ? null : request.headers().first(HeaderNameCache.of(key)).orElse(null);
    }
}
