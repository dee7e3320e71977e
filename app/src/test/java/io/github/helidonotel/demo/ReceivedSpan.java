package io.github.helidonotel.demo;

import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import io.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;
import io.opentelemetry.proto.common.v1.AnyValue;
import io.opentelemetry.proto.common.v1.KeyValue;
import io.opentelemetry.proto.trace.v1.ResourceSpans;
import io.opentelemetry.proto.trace.v1.ScopeSpans;
import io.opentelemetry.proto.trace.v1.Span;
import io.opentelemetry.proto.trace.v1.Status;

/**
 * A span as an OTLP receiver got it, flattened with its resource attributes, ids in hex, attribute
 * values as text.
 */
record ReceivedSpan(String traceId,
                    String spanId,
                    String parentSpanId,
                    String name,
                    Span.SpanKind kind,
                    Status.StatusCode status,
                    List<Event> events,
                    Map<String, String> attributes,
                    Map<String, String> resource) {

    /** A span event with its attributes as text. */
    record Event(String name, Map<String, String> attributes) {
    }

    /** The {@code exception.type} of each exception event, in the order they were recorded. */
    List<String> exceptionTypes() {
        return events.stream()
                .filter(event -> event.name().equals("exception"))
                .map(event -> event.attributes().get("exception.type"))
                .toList();
    }

    String serviceName() {
        return resource.get("service.name");
    }

    boolean isServer() {
        return kind == Span.SpanKind.SPAN_KIND_SERVER;
    }

    boolean isClient() {
        return kind == Span.SpanKind.SPAN_KIND_CLIENT;
    }

    static List<ReceivedSpan> from(ExportTraceServiceRequest request) {
        HexFormat hex = HexFormat.of();
        List<ReceivedSpan> spans = new ArrayList<>();
        for (ResourceSpans resourceSpans : request.getResourceSpansList()) {
            Map<String, String> resource = asText(resourceSpans.getResource().getAttributesList());
            for (ScopeSpans scopeSpans : resourceSpans.getScopeSpansList()) {
                for (Span span : scopeSpans.getSpansList()) {
                    spans.add(new ReceivedSpan(hex.formatHex(span.getTraceId().toByteArray()),
                                               hex.formatHex(span.getSpanId().toByteArray()),
                                               hex.formatHex(span.getParentSpanId().toByteArray()),
                                               span.getName(),
                                               span.getKind(),
                                               span.getStatus().getCode(),
                                               span.getEventsList().stream()
                                                       .map(event -> new Event(event.getName(),
                                                                               asText(event.getAttributesList())))
                                                       .toList(),
                                               asText(span.getAttributesList()),
                                               resource));
                }
            }
        }
        return spans;
    }

    private static Map<String, String> asText(List<KeyValue> attributes) {
        Map<String, String> text = new TreeMap<>();
        for (KeyValue attribute : attributes) {
            AnyValue value = attribute.getValue();
            text.put(attribute.getKey(), value.hasIntValue() ? Long.toString(value.getIntValue()) : value.getStringValue());
        }
        return text;
    }
}
