package io.github.helidonotel.demo;

import java.util.Arrays;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.function.DoubleFunction;
import java.util.stream.Collectors;

import io.opentelemetry.sdk.trace.samplers.Sampler;

/**
 * Which traces are recorded and exported, chosen with OpenTelemetry's standard variables
 * {@code OTEL_TRACES_SAMPLER} and {@code OTEL_TRACES_SAMPLER_ARG} and their standard values. The
 * samplers are the SDK's own; this only maps the names. The default records every trace, as the
 * original demo did; a ratio below 1 is for instances whose load makes full tracing too costly
 * (README, Benchmark). The remote samplers of the specification ({@code jaeger_remote},
 * {@code xray}) need SDK extensions this service does not ship, so they are not offered.
 */
enum TraceSampler {
    ALWAYS_ON("always_on", ratio -> Sampler.alwaysOn()),
    ALWAYS_OFF("always_off", ratio -> Sampler.alwaysOff()),
    TRACE_ID_RATIO("traceidratio", Sampler::traceIdRatioBased),
    PARENT_BASED_ALWAYS_ON("parentbased_always_on", ratio -> Sampler.parentBased(Sampler.alwaysOn())),
    PARENT_BASED_ALWAYS_OFF("parentbased_always_off", ratio -> Sampler.parentBased(Sampler.alwaysOff())),
    PARENT_BASED_TRACE_ID_RATIO("parentbased_traceidratio",
                                ratio -> Sampler.parentBased(Sampler.traceIdRatioBased(ratio)));

    static final String SAMPLER_VARIABLE = "OTEL_TRACES_SAMPLER";
    static final String RATIO_VARIABLE = "OTEL_TRACES_SAMPLER_ARG";
    /** The specification's default: follow the caller's decision, record every new trace. */
    static final TraceSampler DEFAULT = PARENT_BASED_ALWAYS_ON;

    private final String value;
    private final DoubleFunction<Sampler> factory;

    TraceSampler(String value, DoubleFunction<Sampler> factory) {
        this.value = value;
        this.factory = factory;
    }

    /**
     * The sampler {@code env} asks for. The ratio is read only by the ratio samplers; it defaults
     * to 1.0, the specification's default, so {@code traceidratio} alone records everything.
     */
    static Sampler fromEnvironment(Map<String, String> env) {
        String name = env.getOrDefault(SAMPLER_VARIABLE, "");
        TraceSampler sampler = name.isBlank() ? DEFAULT : fromValue(name).orElseThrow(
                () -> new SettingsException(SAMPLER_VARIABLE, name, "one of " + acceptedValues()));
        return sampler.factory.apply(sampler.usesRatio() ? ratio(env.get(RATIO_VARIABLE)) : 1.0);
    }

    private boolean usesRatio() {
        return this == TRACE_ID_RATIO || this == PARENT_BASED_TRACE_ID_RATIO;
    }

    private static double ratio(String value) {
        if (value == null || value.isBlank()) {
            return 1.0;
        }
        String accepted = "a number from 0 to 1, e.g. 0.1 to record one trace in ten";
        try {
            double ratio = Double.parseDouble(value.strip());
            if (!(ratio >= 0.0 && ratio <= 1.0)) {  // also rejects NaN
                throw new SettingsException(RATIO_VARIABLE, value, accepted);
            }
            return ratio;
        } catch (NumberFormatException e) {
            throw new SettingsException(RATIO_VARIABLE, value, accepted);
        }
    }

    private static Optional<TraceSampler> fromValue(String value) {
        String wanted = value.strip().toLowerCase(Locale.ROOT);
        return Arrays.stream(values()).filter(sampler -> sampler.value.equals(wanted)).findFirst();
    }

    private static String acceptedValues() {
        return Arrays.stream(values()).map(sampler -> sampler.value).collect(Collectors.joining(", "));
    }
}
