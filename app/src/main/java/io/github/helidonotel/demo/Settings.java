package io.github.helidonotel.demo;

import java.net.URI;
import java.net.URISyntaxException;
import java.time.Duration;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import ch.qos.logback.core.util.FileSize;
import io.opentelemetry.sdk.resources.Resource;
import io.opentelemetry.sdk.trace.samplers.Sampler;

/**
 * The service's configuration, read once from environment variables (names as in the original
 * demo) and validated before anything starts: a bad value stops the service with a message
 * instead of silently falling back to a default.
 *
 * @param mode            where spans go
 * @param exportEndpoint  OTLP endpoint of that mode (absent for {@link ExportMode#NONE})
 * @param port            listen port ({@code EXPOSE_PORT})
 * @param targetOne       first remote callee of {@code /chain}
 * @param targetTwo       second remote callee of {@code /chain}
 * @param serviceName     {@code service.name} of spans and log lines
 * @param resourceAttributes attributes the user adds to the resource of spans
 *                        ({@code OTEL_RESOURCE_ATTRIBUTES}; see {@link ResourceAttributes})
 * @param logFile         file that log lines also go to, if set
 * @param exportDelay     longest time a finished span waits in the batch before export
 *                        ({@code OTEL_BSP_SCHEDULE_DELAY} in milliseconds, the SDK's standard name)
 * @param exportQueueSize spans that may wait for export; more are dropped ({@code OTEL_BSP_MAX_QUEUE_SIZE})
 * @param exportBatchSize spans sent in one export request ({@code OTEL_BSP_MAX_EXPORT_BATCH_SIZE})
 * @param sampler         which traces are recorded ({@code OTEL_TRACES_SAMPLER}, {@code OTEL_TRACES_SAMPLER_ARG};
 *                        see {@link TraceSampler})
 * @param maxConcurrentRequests requests served at once ({@code MAX_CONCURRENT_REQUESTS}); Helidon answers
 *                        any more at once with 503, before routing; {@link #NO_LIMIT} for none
 * @param maxTcpConnections connections open at once ({@code MAX_TCP_CONNECTIONS}); Helidon accepts no
 *                        more until one closes (they wait in the kernel's accept queue); {@link #NO_LIMIT} for none
 */
public record Settings(ExportMode mode,
                       Optional<URI> exportEndpoint,
                       int port,
                       HostAndPort targetOne,
                       HostAndPort targetTwo,
                       String serviceName,
                       Resource resourceAttributes,
                       Optional<String> logFile,
                       Duration exportDelay,
                       int exportQueueSize,
                       int exportBatchSize,
                       Sampler sampler,
                       int maxConcurrentRequests,
                       int maxTcpConnections) {
    /** Spans reach the backend about a second after they end, quick enough to follow in the UI. */
    static final Duration DEFAULT_EXPORT_DELAY = Duration.ofSeconds(1);
    /**
     * Four times the SDK's 2048: at ~14,000 spans/s on 2 cores (scripts/bench.sh against a real
     * collector) 2048 overflowed now and then while one export was in flight, and 8192 did in
     * some runs (0.3-2.4 % of the spans). Both were measured while OkHttp sent OTLP/HTTP and each
     * export over loopback waited 40 ms (see JdkHttpSenderLoader); with the JDK sender no span
     * was dropped. gRPC still goes through OkHttp. With the endpoint down and this queue full, the
     * whole live heap was 17 MiB of the unit's 64.
     */
    static final int DEFAULT_EXPORT_QUEUE_SIZE = 8192;
    /**
     * The SDK allocates the whole queue when it starts: 2,000,000,000 failed start-up with an
     * IllegalArgumentException and 20,000,000 ran the 64 MiB heap out. A million is far above any
     * need here (the default's 128 times) and still starts.
     */
    static final int MAX_EXPORT_QUEUE_SIZE = 1 << 20;
    /** The SDK's default. */
    static final int DEFAULT_EXPORT_BATCH_SIZE = 512;
    /** Helidon's value for "no limit" of requests or connections. */
    static final int NO_LIMIT = -1;
    private static final String DEFAULT_SERVICE_NAME = "app";
    /**
     * Far above what the demo's traffic needs (the benchmark keeps 16 requests in flight), and low
     * enough that a flood of {@code /random_sleep} or {@code /chain}, whose requests wait seconds,
     * gets fast 503s instead of piling up requests until the 64 MiB heap runs out.
     */
    static final int DEFAULT_MAX_CONCURRENT_REQUESTS = 100;
    /**
     * Bounds the memory idle or slow connections hold (Helidon keeps an idle one 5 minutes). More
     * than {@link #DEFAULT_MAX_CONCURRENT_REQUESTS}: each HTTP/1.1 connection carries one request
     * at a time, so with fewer connections than requests allowed the request limit would never
     * answer 503, and excess requests would wait for a connection instead.
     */
    static final int DEFAULT_MAX_TCP_CONNECTIONS = 400;
    /**
     * Old log files logback.xml may keep ({@code LOG_FILE_MAX_HISTORY}): logback's
     * FixedWindowRollingPolicy allows {@code maxIndex - minIndex} up to 20. With minIndex 1 it
     * would take 21 as well, so the bound is checked here rather than left to logback.
     */
    static final int MAX_LOG_FILE_HISTORY = 20;

    /**
     * Every {@code OTEL_*} variable this service reads. The specification has many more, which an
     * SDK configured by its autoconfigure module would read; this one is built in code, so any
     * other is refused rather than silently ignored.
     */
    static final Set<String> OTEL_VARIABLES = Stream.concat(
            Stream.of("OTEL_SERVICE_NAME", ResourceAttributes.VARIABLE,
                      "OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
                      TraceSampler.SAMPLER_VARIABLE, TraceSampler.RATIO_VARIABLE),
            Arrays.stream(ExportMode.values()).flatMap(mode -> mode.endpointVariable().stream())
                    .filter(variable -> variable.startsWith("OTEL_")))
            .collect(Collectors.toCollection(TreeSet::new));

    /** Reads and validates the settings from {@code env}; throws {@link SettingsException}. */
    public static Settings fromEnvironment(Map<String, String> env) {
        refuseUnsupportedOtelVariables(env);
        String modeValue = env.getOrDefault("MODE", ExportMode.OTEL_COLLECTOR_GRPC.value());
        ExportMode mode = ExportMode.fromValue(modeValue)
                .orElseThrow(() -> new SettingsException("MODE", modeValue, "one of " + ExportMode.acceptedValues()));

        Optional<URI> endpoint = Optional.ofNullable(exportEndpoints(env).get(mode));

        int exportQueueSize = (int) number(env, "OTEL_BSP_MAX_QUEUE_SIZE", DEFAULT_EXPORT_QUEUE_SIZE, 1,
                                           MAX_EXPORT_QUEUE_SIZE);
        Optional<String> configuredServiceName = valueIfSet(env, "OTEL_SERVICE_NAME");
        String serviceName = serviceName(configuredServiceName.orElse(DEFAULT_SERVICE_NAME));
        int maxConcurrentRequests = limit(env, "MAX_CONCURRENT_REQUESTS", DEFAULT_MAX_CONCURRENT_REQUESTS);
        int maxTcpConnections = limit(env, "MAX_TCP_CONNECTIONS", DEFAULT_MAX_TCP_CONNECTIONS);
        requireMoreConnectionsThanRequests(env, maxConcurrentRequests, maxTcpConnections);
        checkLogRotation(env);
        return new Settings(mode,
                            endpoint,
                            port("EXPOSE_PORT", env.getOrDefault("EXPOSE_PORT", "8000")),
                            HostAndPort.parse("TARGET_ONE_HOST", env.getOrDefault("TARGET_ONE_HOST", "app-b")),
                            HostAndPort.parse("TARGET_TWO_HOST", env.getOrDefault("TARGET_TWO_HOST", "app-c")),
                            serviceName,
                            ResourceAttributes.parse(env.getOrDefault(ResourceAttributes.VARIABLE, ""), serviceName,
                                                     configuredServiceName.isPresent()),
                            logFile(env.get("LOG_FILE")),
                            // 1 ms at least: with 0 the SDK's export thread never waits and
                            // keeps a core busy for as long as the service runs.
                            Duration.ofMillis(number(env, "OTEL_BSP_SCHEDULE_DELAY",
                                                     DEFAULT_EXPORT_DELAY.toMillis(), 1)),
                            exportQueueSize,
                            exportBatchSize(env, exportQueueSize),
                            TraceSampler.fromEnvironment(env),
                            maxConcurrentRequests,
                            maxTcpConnections);
    }

    /**
     * The service name as {@code OTEL_SERVICE_NAME} gives it, not checked yet: {@code app} when it
     * is unset or empty. The log lines print it from the first line on, before these settings are
     * read ({@link ServiceNameConverter}).
     */
    static String serviceNameOf(Map<String, String> env) {
        return valueIfSet(env, "OTEL_SERVICE_NAME").orElse(DEFAULT_SERVICE_NAME);
    }

    /**
     * The value of {@code variable}, absent when it is unset or empty: empty counts as unset, as
     * the specification has it for every {@code OTEL_*} variable (and here for the Jaeger modes'
     * endpoint variables too, so that the four endpoint variables behave alike).
     */
    private static Optional<String> valueIfSet(Map<String, String> env, String variable) {
        return Optional.ofNullable(env.get(variable)).filter(value -> !value.isEmpty());
    }

    /**
     * Each HTTP/1.1 connection carries one request at a time: with fewer connections than requests
     * allowed, excess requests would wait for a connection instead of getting a fast 503. A limit
     * the user did not set is named as the default, so the message does not quote a value that is
     * in no environment file.
     */
    private static void requireMoreConnectionsThanRequests(Map<String, String> env, int maxConcurrentRequests,
                                                           int maxTcpConnections) {
        if (maxTcpConnections == NO_LIMIT || maxConcurrentRequests == NO_LIMIT
                || maxTcpConnections > maxConcurrentRequests) {
            return;
        }
        String requests = "MAX_CONCURRENT_REQUESTS ("
                + (isUnsetOrBlank(env, "MAX_CONCURRENT_REQUESTS") ? "default " : "") + maxConcurrentRequests + ")";
        String why = "with fewer connections than requests allowed, excess requests wait for a connection"
                + " instead of getting a fast 503";
        if (isUnsetOrBlank(env, "MAX_TCP_CONNECTIONS")) {
            throw new SettingsException("MAX_TCP_CONNECTIONS (default " + maxTcpConnections + ") must be more than "
                                        + requests + ", or -1 for no limit: " + why);
        }
        throw new SettingsException("MAX_TCP_CONNECTIONS", env.get("MAX_TCP_CONNECTIONS"),
                                    "more than " + requests + ", or -1 for no limit: " + why);
    }

    /** Whether {@code variable} is unset or blank, so that its default applies (see {@link #number}). */
    private static boolean isUnsetOrBlank(Map<String, String> env, String variable) {
        String value = env.get(variable);
        return value == null || value.isBlank();
    }

    /**
     * {@code LOG_FILE_MAX_HISTORY} and {@code LOG_FILE_MAX_SIZE} are read by logback.xml (logging
     * starts before the settings are read) and checked here too: logback takes a history of 21 and
     * a size of 0 without a word, and its warning about another bad history does not say what is
     * accepted. Unset, each gets logback.xml's default.
     */
    private static void checkLogRotation(Map<String, String> env) {
        String history = env.get("LOG_FILE_MAX_HISTORY");
        if (history != null) {
            // Blank as well: logback.xml's default applies only when the variable is unset.
            wholeNumber("LOG_FILE_MAX_HISTORY", history, 1, MAX_LOG_FILE_HISTORY);
        }
        String size = env.get("LOG_FILE_MAX_SIZE");
        if (size != null) {
            refuseZeroLogFileSize(size);
        }
    }

    /**
     * A size of 0 would have logback rotate the file at every look at its size (once a second),
     * each old file holding a second of lines and the history only a few seconds. Read with
     * logback's own parser; a size it cannot read is left to logback, whose words (naming
     * {@code maxFileSize}) {@link LoggingStatus} reports and the lab test looks for.
     */
    private static void refuseZeroLogFileSize(String value) {
        long bytes;
        try {
            bytes = FileSize.valueOf(value.strip()).getSize();  // logback strips the value too
        } catch (IllegalArgumentException unreadable) {
            return;
        }
        if (bytes == 0) {
            throw new SettingsException("LOG_FILE_MAX_SIZE", value,
                                        "a size above 0, e.g. 20MB (at 0 the file would be rotated every second)");
        }
    }

    /**
     * Stops at an {@code OTEL_*} variable this service does not read (e.g. one set through the
     * app role's {@code app_extra_env} in the belief that the SDK reads it). Names only: values
     * such as {@code OTEL_EXPORTER_OTLP_HEADERS} may hold credentials. An empty one counts as
     * unset, as the specification has it.
     */
    private static void refuseUnsupportedOtelVariables(Map<String, String> env) {
        List<String> unsupported = env.entrySet().stream()
                .filter(variable -> variable.getKey().startsWith("OTEL_") && !variable.getValue().isEmpty()
                        && !OTEL_VARIABLES.contains(variable.getKey()))
                .map(Map.Entry::getKey)
                .sorted()
                .toList();
        if (!unsupported.isEmpty()) {
            throw new SettingsException("unsupported " + String.join(", ", unsupported)
                    + ": this service reads only the OpenTelemetry variables " + String.join(", ", OTEL_VARIABLES)
                    + " (MODE and its endpoint variable choose the exporter)");
        }
    }

    /** At most the queue size: the SDK would cut a larger one down to it with only a warning. */
    private static int exportBatchSize(Map<String, String> env, int queueSize) {
        String variable = "OTEL_BSP_MAX_EXPORT_BATCH_SIZE";
        if (isUnsetOrBlank(env, variable)) {
            return Math.min(DEFAULT_EXPORT_BATCH_SIZE, queueSize);
        }
        try {
            return (int) wholeNumber(variable, env.get(variable), 1, queueSize);
        } catch (SettingsException e) {
            throw new SettingsException(variable, env.get(variable),
                                        "a whole number from 1 to OTEL_BSP_MAX_QUEUE_SIZE (" + queueSize + ")");
        }
    }

    /**
     * The endpoint of each exporting mode: its variable's value, or the mode's default. Each one is
     * checked, not only MODE's: the app role writes all four variables into every env file, and a
     * bad one would otherwise be taken without a word and fail only once MODE is switched to it.
     */
    private static Map<ExportMode, URI> exportEndpoints(Map<String, String> env) {
        Map<ExportMode, URI> endpoints = new EnumMap<>(ExportMode.class);
        for (ExportMode mode : ExportMode.values()) {
            mode.endpointVariable().ifPresent(variable -> endpoints.put(mode, endpointUri(
                    mode, variable, valueIfSet(env, variable).orElse(mode.defaultEndpoint().orElseThrow()))));
        }
        return endpoints;
    }

    /**
     * An OTLP endpoint as a URI. gRPC endpoints may be written {@code host:port}, the original's
     * form (the exporter was told "insecure"), which means plain-text HTTP/2 to that address.
     * HTTP endpoints are the traces URL itself, path included: the exporter posts to the URL as
     * given, so {@code http://otel-collector:4318} alone would get a 404 at every export.
     */
    private static URI endpointUri(ExportMode mode, String variable, String value) {
        boolean grpc = mode.protocol() == ExportMode.Protocol.GRPC;
        String accepted = grpc
                ? "host:port or http(s)://host:port, e.g. otel-collector:4317"
                : "the http(s) URL of the traces endpoint, path included, e.g. http://otel-collector:4318/v1/traces";
        // User info (user:password@) would be logged with the endpoint at start, into the journal
        // and the shipped log file; any '@' is refused, before the value can be quoted in another
        // message (a password with a '#' or '/' in it does not even parse as user info).
        if (value.contains("@")) {
            throw new SettingsException("invalid " + variable + ": expected " + accepted
                                        + ", without user info (user:password@): the endpoint is logged at start"
                                        + " (the value is left out here for the same reason)");
        }
        String candidate = value.strip();
        if (grpc && !candidate.contains("://")) {
            candidate = "http://" + candidate;
        }
        try {
            URI uri = new URI(candidate);
            boolean httpScheme = "http".equals(uri.getScheme()) || "https".equals(uri.getScheme());
            // An unusable port would fail the exporter with a stack trace (gRPC) or at every
            // export (HTTP).
            if (!httpScheme || uri.getHost() == null || !HostAndPort.hasUsablePort(uri)
                    || (grpc && uri.getPort() == -1 && !value.contains("://"))
                    || (!grpc && (uri.getRawPath() == null || uri.getRawPath().isEmpty() || uri.getRawPath().equals("/")))) {
                throw new SettingsException(variable, value, accepted);
            }
            return uri;
        } catch (URISyntaxException e) {
            throw new SettingsException(variable, value, accepted);
        }
    }

    /**
     * Unset or empty: no log file, the test logback.xml makes. A value of spaces alone passes that
     * test (logback then fails to open a file of no name), so it is refused here, with the
     * variable named, rather than leaving only logback's own error.
     */
    private static Optional<String> logFile(String value) {
        if (value == null || value.isEmpty()) {
            return Optional.empty();
        }
        if (value.isBlank()) {
            throw new SettingsException("LOG_FILE", value, "a file path, or empty for no log file");
        }
        return Optional.of(value);
    }

    private static int port(String variable, String value) {
        String accepted = "a port number from 0 to 65535";
        try {
            int port = Integer.parseInt(value.strip());
            if (port < 0 || port > 65535) {
                throw new SettingsException(variable, value, accepted);
            }
            return port;
        } catch (NumberFormatException e) {
            throw new SettingsException(variable, value, accepted);
        }
    }

    /** The whole number in {@code variable}, {@code min} or more (an int); {@code fallback} when unset or blank. */
    private static long number(Map<String, String> env, String variable, long fallback, long min) {
        return number(env, variable, fallback, min, Integer.MAX_VALUE);
    }

    /** The whole number in {@code variable}, from {@code min} to {@code max}; {@code fallback} when unset or blank. */
    private static long number(Map<String, String> env, String variable, long fallback, long min, long max) {
        if (isUnsetOrBlank(env, variable)) {
            return fallback;
        }
        return wholeNumber(variable, env.get(variable), min, max);
    }

    /** {@code value} of {@code variable} as a whole number from {@code min} to {@code max}; blank is refused. */
    private static long wholeNumber(String variable, String value, long min, long max) {
        String accepted = "a whole number from " + min + " to " + max;
        try {
            long number = Long.parseLong(value.strip());
            if (number < min || number > max) {
                throw new SettingsException(variable, value, accepted);
            }
            return number;
        } catch (NumberFormatException e) {
            throw new SettingsException(variable, value, accepted);
        }
    }

    /** A limit in {@code variable}: a whole number, 1 or more, or -1 for none; {@code fallback} when unset or blank. */
    private static int limit(Map<String, String> env, String variable, int fallback) {
        String value = env.get(variable);
        if (value != null && value.strip().equals(Integer.toString(NO_LIMIT))) {
            return NO_LIMIT;
        }
        try {
            return (int) number(env, variable, fallback, 1);
        } catch (SettingsException e) {
            throw new SettingsException(variable, value,
                                        "a whole number from 1 to " + Integer.MAX_VALUE + ", or -1 for no limit");
        }
    }

    /**
     * Spaces around the name are refused rather than trimmed: they are a slip, and the log lines
     * print the name as written ({@link ServiceNameConverter}), like the spans.
     */
    private static String serviceName(String value) {
        String variable = "OTEL_SERVICE_NAME";
        if (value.isBlank()) {
            throw new SettingsException(variable, value, "a non-empty name, e.g. app-a");
        }
        if (!value.equals(value.strip())) {
            throw new SettingsException(variable, value, "a name without spaces around it, e.g. app-a");
        }
        return value;
    }
}
