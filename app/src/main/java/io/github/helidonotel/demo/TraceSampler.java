package io.github.helidonotel.demo;

import java.util.Map;
import java.util.function.DoubleFunction;

import io.opentelemetry.sdk.trace.samplers.Sampler;

/**
 * Which traces are recorded and exported, chosen with OpenTelemetry's standard variables
 * {@code OTEL_TRACES_SAMPLER} and {@code OTEL_TRACES_SAMPLER_ARG} and their standard values. The
 * samplers are the SDK's own; this only maps the names. The default records every trace, as the
 * original demo did; a ratio below 1 is for instances whose load makes full tracing too costly
 * (README, Benchmark). The remote samplers of the specification ({@code jaeger_remote},
 * {@code xray}) need SDK extensions this service does not ship, so they are not offered.
 *
 * <p>Why not the SDK's autoconfigure module, which reads these variables too: it would also take
 * the exporter, resource and propagators from other {@code OTEL_*} variables, while MODE and its
 * endpoint variables decide those here; and its errors name the property form
 * ({@code otel.traces.sampler}), where a unit's environment file needs the variable, the value and
 * the accepted values in one line ({@link SettingsException}).
 */
enum TraceSampler {
    ALWAYS_ON("always_on", false, ratio -> Sampler.alwaysOn()),
    ALWAYS_OFF("always_off", false, ratio -> Sampler.alwaysOff()),
    TRACE_ID_RATIO("traceidratio", true, Sampler::traceIdRatioBased),
    PARENT_BASED_ALWAYS_ON("parentbased_always_on", false, ratio -> Sampler.parentBased(Sampler.alwaysOn())),
    PARENT_BASED_ALWAYS_OFF("parentbased_always_off", false, ratio -> Sampler.parentBased(Sampler.alwaysOff())),
    PARENT_BASED_TRACE_ID_RATIO("parentbased_traceidratio", true,
                                ratio -> Sampler.parentBased(Sampler.traceIdRatioBased(ratio)));

    static final String SAMPLER_VARIABLE = "OTEL_TRACES_SAMPLER";
    static final String RATIO_VARIABLE = "OTEL_TRACES_SAMPLER_ARG";
    /** The specification's default: follow the caller's decision, record every new trace. */
    static final TraceSampler DEFAULT = PARENT_BASED_ALWAYS_ON;

    private final String value;
    /** Whether OTEL_TRACES_SAMPLER_ARG is read: the specification has the others ignore it. */
    private final boolean readsRatio;
    private final DoubleFunction<Sampler> factory;

    TraceSampler(String value, boolean readsRatio, DoubleFunction<Sampler> factory) {
        this.value = value;
        this.readsRatio = readsRatio;
        this.factory = factory;
    }

    /** The name as written in {@code OTEL_TRACES_SAMPLER}. */
    String value() {
        return value;
    }

    /**
     * The sampler {@code env} asks for. The ratio is read only by the ratio samplers; it defaults
     * to 1.0, the specification's default, so {@code traceidratio} alone records everything.
     */
    static Sampler fromEnvironment(Map<String, String> env) {
        String name = env.getOrDefault(SAMPLER_VARIABLE, "");
        TraceSampler sampler = name.isBlank() ? DEFAULT : ConfigNames.find(values(), TraceSampler::value, name)
                .orElseThrow(() -> new SettingsException(SAMPLER_VARIABLE, name,
                                                         "one of " + ConfigNames.list(values(), TraceSampler::value)));
        return sampler.factory.apply(sampler.readsRatio ? ratio(env.get(RATIO_VARIABLE)) : 1.0);
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
}
