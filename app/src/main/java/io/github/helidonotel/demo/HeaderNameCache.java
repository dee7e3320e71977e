package io.github.helidonotel.demo;

import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentMap;

import io.helidon.http.HeaderName;
import io.helidon.http.HeaderNames;

/**
 * Helidon's {@link HeaderName} for each header name that OpenTelemetry's extractors and
 * propagators ask for ({@code host}, {@code forwarded}, {@code x-forwarded-proto},
 * {@code user-agent}, {@code traceparent}, ...), made once. {@link HeaderNames#create(String)}
 * lower-cases the name and looks it up again on every call, and a server span asks for about ten
 * headers (three of them twice): a fifth of the span's start in a profile of {@code /}. The names
 * come from code, never from a request, so the cache stays small; it is bounded all the same.
 */
final class HeaderNameCache {
    private static final int MAX_SIZE = 64;
    private static final ConcurrentMap<String, HeaderName> NAMES = new ConcurrentHashMap<>();

    private HeaderNameCache() {
    }

    /** The header name {@code name} (any case), as {@link HeaderNames#create(String)} makes it. */
    static HeaderName of(String name) {
        HeaderName cached = NAMES.get(name);
        if (cached != null) {
            return cached;
        }
        HeaderName created = HeaderNames.create(name);
        if (NAMES.size() < MAX_SIZE) {
            NAMES.putIfAbsent(name, created);
        }
        return created;
    }
}
