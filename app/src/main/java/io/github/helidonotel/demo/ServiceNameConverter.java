package io.github.helidonotel.demo;

import ch.qos.logback.classic.pattern.ClassicConverter;
import ch.qos.logback.classic.spi.ILoggingEvent;

/**
 * {@code %serviceName} in logback.xml's line pattern: the service name exactly as the spans carry
 * it. Logback's own ways fall short: a {@code ${OTEL_SERVICE_NAME}} in the pattern is pasted into
 * it before the pattern is parsed, so a {@code %}, {@code )} or backslash in the name was read as
 * pattern syntax ({@code app%level} printed {@code appINFO}, {@code shop(eu)} cut every line short),
 * and {@code %property} finds nothing, as OpenTelemetry's MDC appender hands the encoder events
 * without the logger context's properties.
 */
public final class ServiceNameConverter extends ClassicConverter {
    private final String serviceName = Settings.serviceNameOf(System.getenv());

    @Override
    public String convert(ILoggingEvent event) {
        return serviceName;
    }
}
