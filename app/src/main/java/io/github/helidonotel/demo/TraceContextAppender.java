package io.github.helidonotel.demo;

import ch.qos.logback.classic.spi.ILoggingEvent;
import io.opentelemetry.instrumentation.logback.mdc.v1_0.OpenTelemetryAppender;

/**
 * OpenTelemetry's logback MDC appender (adds trace_id, span_id and trace_flags of the current
 * span) with the caller's file and line kept. That appender hands its children a copy of the
 * event that carries caller data only if it was computed before the copy was made; the log format
 * prints {@code [File.java:line]}, so compute it first, on the logging thread.
 */
public class TraceContextAppender extends OpenTelemetryAppender {
    @Override
    protected void append(ILoggingEvent event) {
        event.getCallerData();
        super.append(event);
    }
}
