package io.github.helidonotel.demo;

import java.util.List;

import io.opentelemetry.common.ComponentLoader;
import io.opentelemetry.sdk.common.export.HttpSenderProvider;

/**
 * Finds OpenTelemetry's plug-ins on the class path as the exporters do by default, except that the
 * only HTTP sender it offers is the one built on the JDK's {@code HttpClient}. Given to the OTLP/HTTP
 * exporter only.
 *
 * <p>Why not OkHttp's, which the exporter picks by default: OkHttp leaves Nagle's algorithm on and
 * writes a request body in 8 KiB pieces, so the last piece of each export waits until the receiver
 * acknowledges the first, and Linux delays that acknowledgement by up to 40 ms. Over loopback, where
 * a whole batch fits in one TCP segment, every export waited those 40 ms (seen with strace on the
 * receiver, and with the lab's otelcol); the batch processor sends one batch at a time, so spans
 * piled up in its queue, lived long enough to be copied by the young collections, and were dropped
 * once 512 per 40 ms was not enough. The JDK client sets {@code TCP_NODELAY}. OkHttp stays on the
 * class path because the OTLP/gRPC exporter needs it: the registry serves no other gRPC sender at
 * this OpenTelemetry release.
 *
 * <p>Choosing a provider by its class name is what OpenTelemetry's own selection property
 * ({@code io.opentelemetry.sdk.common.export.HttpSenderProvider}) does; doing it here keeps the
 * choice to this one exporter and out of JVM-wide settings.
 */
final class JdkHttpSenderLoader implements ComponentLoader {
    /** In an internal package of opentelemetry-exporter-sender-jdk, so named rather than imported. */
    static final String JDK_HTTP_SENDER_PROVIDER =
            "io.opentelemetry.exporter.sender.jdk.internal.JdkHttpSenderProvider";

    private final ComponentLoader classPath =
            ComponentLoader.forClassLoader(JdkHttpSenderLoader.class.getClassLoader());

    @Override
    public <T> Iterable<T> load(Class<T> spiClass) {
        List<T> found = ComponentLoader.loadList(classPath, spiClass);
        if (spiClass != HttpSenderProvider.class) {
            return found;
        }
        return found.stream()
                .filter(provider -> provider.getClass().getName().equals(JDK_HTTP_SENDER_PROVIDER))
                .toList();
    }
}
