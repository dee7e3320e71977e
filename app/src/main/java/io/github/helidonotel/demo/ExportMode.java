package io.github.helidonotel.demo;

import java.util.Optional;

/**
 * Where spans go, chosen by the {@code MODE} variable. The names and endpoint variables are those
 * of the original FastAPI demo, so an inventory written for it keeps working.
 */
public enum ExportMode {
    OTEL_COLLECTOR_GRPC("otel-collector-grpc", Protocol.GRPC, "OTEL_GRPC_ENDPOINT", "otel-collector:4317"),
    OTEL_COLLECTOR_HTTP("otel-collector-http", Protocol.HTTP, "OTEL_HTTP_ENDPOINT",
                        "http://otel-collector:4318/v1/traces"),
    JAEGER_GRPC("jaeger-grpc", Protocol.GRPC, "JAEGER_GRPC_ENDPOINT", "jaeger-collector:4317"),
    JAEGER_HTTP("jaeger-http", Protocol.HTTP, "JAEGER_HTTP_ENDPOINT", "http://jaeger-collector:4318/v1/traces"),
    /** Tracing off: no spans are recorded and nothing is exported (baselines, local runs). */
    NONE("none", Protocol.NONE, null, null);

    /** Wire protocol of the OTLP exporter. */
    public enum Protocol { GRPC, HTTP, NONE }

    private final String value;
    private final Protocol protocol;
    private final String endpointVariable;
    private final String defaultEndpoint;

    ExportMode(String value, Protocol protocol, String endpointVariable, String defaultEndpoint) {
        this.value = value;
        this.protocol = protocol;
        this.endpointVariable = endpointVariable;
        this.defaultEndpoint = defaultEndpoint;
    }

    /** The value as written in {@code MODE}. */
    public String value() {
        return value;
    }

    public Protocol protocol() {
        return protocol;
    }

    /** Name of the variable holding this mode's endpoint; empty for {@link #NONE}. */
    public Optional<String> endpointVariable() {
        return Optional.ofNullable(endpointVariable);
    }

    /** Endpoint used when the variable is unset, as in the original demo. */
    public Optional<String> defaultEndpoint() {
        return Optional.ofNullable(defaultEndpoint);
    }

    /** Every accepted {@code MODE} value, comma separated, for error messages. */
    public static String acceptedValues() {
        return ConfigNames.list(values(), ExportMode::value);
    }

    /** The mode named by {@code value}, if any (case-insensitive, surrounding blanks ignored). */
    public static Optional<ExportMode> fromValue(String value) {
        return ConfigNames.find(values(), ExportMode::value, value);
    }
}
