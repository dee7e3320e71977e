package io.github.helidonotel.demo;

import java.net.URI;
import java.time.Duration;
import java.util.Map;
import java.util.Optional;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.is;
import static org.hamcrest.Matchers.not;
import static org.hamcrest.Matchers.startsWith;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertThrows;

class SettingsTest {

    @Test
    void defaultsAreThoseOfTheOriginalDemo() {
        Settings settings = Settings.fromEnvironment(Map.of());
        assertThat(settings.mode(), is(ExportMode.OTEL_COLLECTOR_GRPC));
        assertThat(settings.exportEndpoint(), is(Optional.of(URI.create("http://otel-collector:4317"))));
        assertThat(settings.port(), is(8000));
        assertThat(settings.targetOne(), is(new HostAndPort("app-b", 8000)));
        assertThat(settings.targetTwo(), is(new HostAndPort("app-c", 8000)));
        assertThat(settings.serviceName(), is("app"));
        assertThat("empty is unset, as for every OTEL_* variable",
                   Settings.fromEnvironment(Map.of("OTEL_SERVICE_NAME", "")).serviceName(), is("app"));
        assertThat(settings.logFile(), is(Optional.empty()));
        assertThat(settings.exportDelay(), is(Duration.ofSeconds(1)));
        assertThat(settings.exportQueueSize(), is(8192));
        assertThat(settings.exportBatchSize(), is(512));
        assertThat(settings.maxConcurrentRequests(), is(100));
        assertThat(settings.maxTcpConnections(), is(400));
    }

    @Test
    void floodLimitsAreReadAndMinusOneLiftsThem() {
        Settings settings = Settings.fromEnvironment(Map.of("MAX_CONCURRENT_REQUESTS", "8",
                                                            "MAX_TCP_CONNECTIONS", " 64 "));
        assertThat(settings.maxConcurrentRequests(), is(8));
        assertThat(settings.maxTcpConnections(), is(64));
        Settings unlimited = Settings.fromEnvironment(Map.of("MAX_CONCURRENT_REQUESTS", "-1",
                                                             "MAX_TCP_CONNECTIONS", "-1"));
        assertThat(unlimited.maxConcurrentRequests(), is(Settings.NO_LIMIT));
        assertThat(unlimited.maxTcpConnections(), is(Settings.NO_LIMIT));
        assertThat("connections without limit, requests limited",
                   Settings.fromEnvironment(Map.of("MAX_TCP_CONNECTIONS", "-1")).maxConcurrentRequests(), is(100));
    }

    @Test
    void fewerConnectionsThanRequestsAreRefusedSinceNoRequestWouldGetA503() {
        SettingsException error = assertThrows(SettingsException.class, () -> Settings.fromEnvironment(
                Map.of("MAX_CONCURRENT_REQUESTS", "500")));
        assertThat("the connection limit the user did not set is named as the default", error.getMessage(),
                   startsWith("MAX_TCP_CONNECTIONS (default 400) must be more than MAX_CONCURRENT_REQUESTS (500),"
                              + " or -1 for no limit: "));
        SettingsException bothSet = assertThrows(SettingsException.class, () -> Settings.fromEnvironment(
                Map.of("MAX_CONCURRENT_REQUESTS", "10", "MAX_TCP_CONNECTIONS", "10")));
        assertThat(bothSet.getMessage(), startsWith(
                "invalid MAX_TCP_CONNECTIONS='10': expected more than MAX_CONCURRENT_REQUESTS (10), or -1"));
        SettingsException fewerThanTheDefault = assertThrows(SettingsException.class, () -> Settings.fromEnvironment(
                Map.of("MAX_TCP_CONNECTIONS", "50")));
        assertThat(fewerThanTheDefault.getMessage(), startsWith(
                "invalid MAX_TCP_CONNECTIONS='50': expected more than MAX_CONCURRENT_REQUESTS (default 100), or -1"));
    }

    @Test
    void batchingFollowsTheSdksVariables() {
        Settings settings = Settings.fromEnvironment(Map.of("OTEL_BSP_SCHEDULE_DELAY", "200",
                                                            "OTEL_BSP_MAX_QUEUE_SIZE", "100",
                                                            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "50"));
        assertThat(settings.exportDelay(), is(Duration.ofMillis(200)));
        assertThat(settings.exportQueueSize(), is(100));
        assertThat(settings.exportBatchSize(), is(50));
        assertThat("a small queue caps the default batch size",
                   Settings.fromEnvironment(Map.of("OTEL_BSP_MAX_QUEUE_SIZE", "100")).exportBatchSize(), is(100));
    }

    @ParameterizedTest
    @CsvSource({
            "otel-collector-grpc, OTEL_GRPC_ENDPOINT,   collector.example:4317,         http://collector.example:4317",
            "otel-collector-grpc, OTEL_GRPC_ENDPOINT,   https://collector.example:4317, https://collector.example:4317",
            "otel-collector-http, OTEL_HTTP_ENDPOINT,   http://c.example:4318/v1/traces, http://c.example:4318/v1/traces",
            "jaeger-grpc,         JAEGER_GRPC_ENDPOINT, 10.0.0.5:4317,                  http://10.0.0.5:4317",
            "jaeger-http,         JAEGER_HTTP_ENDPOINT, http://j.example:4318/v1/traces, http://j.example:4318/v1/traces",
    })
    void eachModeReadsItsOwnEndpointVariable(String mode, String variable, String value, String expected) {
        Settings settings = Settings.fromEnvironment(Map.of("MODE", mode, variable, value));
        assertThat(settings.exportEndpoint(), is(Optional.of(URI.create(expected))));
    }

    @ParameterizedTest
    @CsvSource({
            "otel-collector-grpc, OTEL_GRPC_ENDPOINT,   http://otel-collector:4317",
            "otel-collector-http, OTEL_HTTP_ENDPOINT,   http://otel-collector:4318/v1/traces",
            "jaeger-grpc,         JAEGER_GRPC_ENDPOINT, http://jaeger-collector:4317",
    })
    void anEmptyEndpointVariableCountsAsUnset(String mode, String variable, String defaultEndpoint) {
        Settings settings = Settings.fromEnvironment(Map.of("MODE", mode, variable, ""));
        assertThat(settings.exportEndpoint(), is(Optional.of(URI.create(defaultEndpoint))));
    }

    /** The endpoint is logged at start: user info would put a password in the journal and the log file. */
    @ParameterizedTest
    @CsvSource({
            "otel-collector-http, OTEL_HTTP_ENDPOINT,   https://user:s3cret@collector:4318/v1/traces",
            "otel-collector-http, OTEL_HTTP_ENDPOINT,   https://user:s3cret@collector:99999/v1/traces",
            "otel-collector-http, OTEL_HTTP_ENDPOINT,   https://user:s3#cret@collector:4318/v1/traces",
            "otel-collector-grpc, OTEL_GRPC_ENDPOINT,   user:s3cret@collector:4317",
            "jaeger-grpc,         JAEGER_GRPC_ENDPOINT, https://s3cret@collector:4317",
            // another mode's endpoint: the env files hold all four
            "otel-collector-grpc, JAEGER_HTTP_ENDPOINT, https://user:s3cret@collector:4318/v1/traces",
            "none,                OTEL_GRPC_ENDPOINT,   user:s3cret@collector:4317",
    })
    void endpointsWithUserInfoAreRefusedWithoutRepeatingTheValue(String mode, String variable, String endpoint) {
        SettingsException error = assertThrows(SettingsException.class, () -> Settings.fromEnvironment(
                Map.of("MODE", mode, variable, endpoint)));
        assertThat(error.getMessage(), startsWith("invalid " + variable + ": expected "));
        assertThat(error.getMessage(), containsString("without user info (user:password@)"));
        assertThat(error.getMessage(), not(containsString("s3")));
    }

    @Test
    void modeNoneHasNoEndpoint() {
        assertThat(Settings.fromEnvironment(Map.of("MODE", "none")).exportEndpoint(), is(Optional.empty()));
    }

    @Test
    void targetsAcceptHostAndHostPort() {
        Settings settings = Settings.fromEnvironment(Map.of("TARGET_ONE_HOST", "192.168.56.12",
                                                            "TARGET_TWO_HOST", "node3:9000"));
        assertThat(settings.targetOne(), is(new HostAndPort("192.168.56.12", 8000)));
        assertThat(settings.targetTwo(), is(new HostAndPort("node3", 9000)));
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
            "MODE                | jaeger-thrift         | invalid MODE='jaeger-thrift': expected one of otel-collector-grpc, otel-collector-http, jaeger-grpc, jaeger-http, none",
            "EXPOSE_PORT         | eighty                | invalid EXPOSE_PORT='eighty': expected a port number from 0 to 65535",
            "EXPOSE_PORT         | 70000                 | invalid EXPOSE_PORT='70000': expected a port number from 0 to 65535",
            "OTEL_GRPC_ENDPOINT  | otel-collector        | invalid OTEL_GRPC_ENDPOINT='otel-collector': expected host:port or http(s)://host:port, e.g. otel-collector:4317",
            "OTEL_GRPC_ENDPOINT  | otel collector:4317   | invalid OTEL_GRPC_ENDPOINT='otel collector:4317': expected host:port or http(s)://host:port, e.g. otel-collector:4317",
            "OTEL_GRPC_ENDPOINT  | 127.0.0.1:99999       | invalid OTEL_GRPC_ENDPOINT='127.0.0.1:99999': expected host:port or http(s)://host:port, e.g. otel-collector:4317",
            "OTEL_GRPC_ENDPOINT  | http://collector:0    | invalid OTEL_GRPC_ENDPOINT='http://collector:0': expected host:port or http(s)://host:port, e.g. otel-collector:4317",
            "OTEL_GRPC_ENDPOINT  | http://collector:/    | invalid OTEL_GRPC_ENDPOINT='http://collector:/': expected host:port or http(s)://host:port, e.g. otel-collector:4317",
            // another mode's endpoint (MODE is otel-collector-grpc here): the env files hold all four
            "OTEL_HTTP_ENDPOINT  | http://otel-collector:4318 | invalid OTEL_HTTP_ENDPOINT='http://otel-collector:4318': expected the http(s) URL of the traces endpoint, path included, e.g. http://otel-collector:4318/v1/traces",
            "JAEGER_GRPC_ENDPOINT | jaeger-collector     | invalid JAEGER_GRPC_ENDPOINT='jaeger-collector': expected host:port or http(s)://host:port, e.g. otel-collector:4317",
            "JAEGER_HTTP_ENDPOINT | jaeger-collector:4318/v1/traces | invalid JAEGER_HTTP_ENDPOINT='jaeger-collector:4318/v1/traces': expected the http(s) URL of the traces endpoint, path included, e.g. http://otel-collector:4318/v1/traces",
            "LOG_FILE            | '  '                  | invalid LOG_FILE='  ': expected a file path, or empty for no log file",
            "TARGET_ONE_HOST     | app-b:port            | invalid TARGET_ONE_HOST='app-b:port': expected host or host:port, e.g. app-b or 192.168.56.12:8000",
            "TARGET_TWO_HOST     | http://app-c/x        | invalid TARGET_TWO_HOST='http://app-c/x': expected host or host:port, e.g. app-b or 192.168.56.12:8000",
            "TARGET_TWO_HOST     | app-c:99999           | invalid TARGET_TWO_HOST='app-c:99999': expected host or host:port, e.g. app-b or 192.168.56.12:8000",
            "TARGET_TWO_HOST     | app-c:                | invalid TARGET_TWO_HOST='app-c:': expected host or host:port, e.g. app-b or 192.168.56.12:8000",
            "TARGET_ONE_HOST     | app-b:8000#x          | invalid TARGET_ONE_HOST='app-b:8000#x': expected host or host:port, e.g. app-b or 192.168.56.12:8000",
            "OTEL_SERVICE_NAME   | ' '                   | invalid OTEL_SERVICE_NAME=' ': expected a non-empty name, e.g. app-a",
            "OTEL_SERVICE_NAME   | ' app-a'              | invalid OTEL_SERVICE_NAME=' app-a': expected a name without spaces around it, e.g. app-a",
            "OTEL_SERVICE_NAME   | 'app-a\t'             | invalid OTEL_SERVICE_NAME='app-a\t': expected a name without spaces around it, e.g. app-a",
            "OTEL_BSP_SCHEDULE_DELAY | soon               | invalid OTEL_BSP_SCHEDULE_DELAY='soon': expected a whole number from 1 to 2147483647",
            "OTEL_BSP_SCHEDULE_DELAY | 0                  | invalid OTEL_BSP_SCHEDULE_DELAY='0': expected a whole number from 1 to 2147483647",
            "OTEL_BSP_SCHEDULE_DELAY | 99999999999        | invalid OTEL_BSP_SCHEDULE_DELAY='99999999999': expected a whole number from 1 to 2147483647",
            "OTEL_BSP_SCHEDULE_DELAY | -5                 | invalid OTEL_BSP_SCHEDULE_DELAY='-5': expected a whole number from 1 to 2147483647",
            "OTEL_BSP_MAX_QUEUE_SIZE | 0                  | invalid OTEL_BSP_MAX_QUEUE_SIZE='0': expected a whole number from 1 to 1048576",
            "OTEL_BSP_MAX_QUEUE_SIZE | 2000000000         | invalid OTEL_BSP_MAX_QUEUE_SIZE='2000000000': expected a whole number from 1 to 1048576",
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE | 10000       | invalid OTEL_BSP_MAX_EXPORT_BATCH_SIZE='10000': expected a whole number from 1 to OTEL_BSP_MAX_QUEUE_SIZE (8192)",
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE | 3000000000  | invalid OTEL_BSP_MAX_EXPORT_BATCH_SIZE='3000000000': expected a whole number from 1 to OTEL_BSP_MAX_QUEUE_SIZE (8192)",
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE | 0           | invalid OTEL_BSP_MAX_EXPORT_BATCH_SIZE='0': expected a whole number from 1 to OTEL_BSP_MAX_QUEUE_SIZE (8192)",
            "MAX_CONCURRENT_REQUESTS | 0                  | invalid MAX_CONCURRENT_REQUESTS='0': expected a whole number from 1 to 2147483647, or -1 for no limit",
            "MAX_CONCURRENT_REQUESTS | 3000000000         | invalid MAX_CONCURRENT_REQUESTS='3000000000': expected a whole number from 1 to 2147483647, or -1 for no limit",
            "MAX_CONCURRENT_REQUESTS | many               | invalid MAX_CONCURRENT_REQUESTS='many': expected a whole number from 1 to 2147483647, or -1 for no limit",
            "MAX_TCP_CONNECTIONS | -2                    | invalid MAX_TCP_CONNECTIONS='-2': expected a whole number from 1 to 2147483647, or -1 for no limit",
            "OTEL_TRACES_SAMPLER | jaeger_remote         | invalid OTEL_TRACES_SAMPLER='jaeger_remote': expected one of always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio",
    })
    void badValuesAreRejectedWithTheVariableValueAndAcceptedValues(String variable, String value, String message) {
        SettingsException error = assertThrows(SettingsException.class,
                                               () -> Settings.fromEnvironment(Map.of(variable, value)));
        assertThat(error.getMessage(), is(message));
    }

    @Test
    void logRotationValuesLogbackTakesAreAccepted() {
        assertDoesNotThrow(() -> Settings.fromEnvironment(Map.of("LOG_FILE_MAX_HISTORY", "1", "LOG_FILE_MAX_SIZE", "1KB")));
        assertDoesNotThrow(() -> Settings.fromEnvironment(
                Map.of("LOG_FILE_MAX_HISTORY", " 20 ", "LOG_FILE_MAX_SIZE", " 20MB ")));
    }

    /** logback's window (maxIndex - minIndex up to 20, minIndex 1) would take 21 without a word. */
    @ParameterizedTest
    @ValueSource(strings = {"21", "0", "-1", "five", "", " "})
    void logFileHistoryOutsideOneToTwentyIsRefused(String history) {
        SettingsException error = assertThrows(SettingsException.class, () -> Settings.fromEnvironment(
                Map.of("LOG_FILE_MAX_HISTORY", history)));
        assertThat(error.getMessage(), is("invalid LOG_FILE_MAX_HISTORY='" + history
                                          + "': expected a whole number from 1 to 20"));
    }

    /** At 0 logback would rotate the file every second. */
    @ParameterizedTest
    @ValueSource(strings = {"0", "0KB", " 0 mb "})
    void aLogFileSizeOfZeroIsRefused(String size) {
        SettingsException error = assertThrows(SettingsException.class, () -> Settings.fromEnvironment(
                Map.of("LOG_FILE_MAX_SIZE", size)));
        assertThat(error.getMessage(), startsWith("invalid LOG_FILE_MAX_SIZE='" + size + "': expected a size above 0"));
    }

    /** logback's own message names maxFileSize (LoggingStatus reports it; the lab test looks for it). */
    @Test
    void aLogFileSizeLogbackCannotReadIsLeftToLogback() {
        assertDoesNotThrow(() -> Settings.fromEnvironment(Map.of("LOG_FILE_MAX_SIZE", "lots")));
    }

    @Test
    void everyTraceIsRecordedUnlessTheCallerDecidedOtherwiseByDefault() {
        assertThat(Settings.fromEnvironment(Map.of()).sampler().getDescription(),
                   is("ParentBased{root:AlwaysOnSampler,remoteParentSampled:AlwaysOnSampler,"
                      + "remoteParentNotSampled:AlwaysOffSampler,localParentSampled:AlwaysOnSampler,"
                      + "localParentNotSampled:AlwaysOffSampler}"));
    }

    @ParameterizedTest
    @CsvSource({
            "always_off,               '',   AlwaysOffSampler",
            "' TraceIdRatio ',         0.25, TraceIdRatioBased{0.250000}",
            "traceidratio,             '',   TraceIdRatioBased{1.000000}",
            "parentbased_traceidratio, 0.1,  ParentBased{root:TraceIdRatioBased{0.100000},",
            "always_on,                ten,  AlwaysOnSampler",
    })
    void samplerFollowsTheSdksVariables(String name, String ratio, String description) {
        Settings settings = Settings.fromEnvironment(Map.of("OTEL_TRACES_SAMPLER", name,
                                                            "OTEL_TRACES_SAMPLER_ARG", ratio));
        assertThat("the ratio is read only by the ratio samplers, as the specification has it",
                   settings.sampler().getDescription(), startsWith(description));
    }

    @ParameterizedTest
    @ValueSource(strings = {"ten", "1.5", "-0.1", "NaN"})
    void ratioSamplersRejectARatioOutsideZeroToOne(String ratio) {
        SettingsException error = assertThrows(SettingsException.class, () -> Settings.fromEnvironment(
                Map.of("OTEL_TRACES_SAMPLER", "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG", ratio)));
        assertThat(error.getMessage(), is("invalid OTEL_TRACES_SAMPLER_ARG='" + ratio
                                          + "': expected a number from 0 to 1, e.g. 0.1 to record one trace in ten"));
    }

    /** The exporter posts to the URL as given: without the path every export would get a 404. */
    @ParameterizedTest
    @ValueSource(strings = {"http://otel-collector:4318", "http://otel-collector:4318/"})
    void httpModeRejectsAnEndpointWithoutThePath(String endpoint) {
        SettingsException error = assertThrows(SettingsException.class, () -> Settings.fromEnvironment(
                Map.of("MODE", "jaeger-http", "JAEGER_HTTP_ENDPOINT", endpoint)));
        assertThat(error.getMessage(), is("invalid JAEGER_HTTP_ENDPOINT='" + endpoint + "': expected the http(s) URL"
                                          + " of the traces endpoint, path included, e.g. http://otel-collector:4318/v1/traces"));
    }

    @Test
    void httpModeRejectsAPortOutsideTheRange() {
        SettingsException error = assertThrows(SettingsException.class, () -> Settings.fromEnvironment(
                Map.of("MODE", "otel-collector-http", "OTEL_HTTP_ENDPOINT", "http://127.0.0.1:99999/v1/traces")));
        assertThat(error.getMessage(), containsString("invalid OTEL_HTTP_ENDPOINT='http://127.0.0.1:99999/v1/traces'"));
    }

    @Test
    void resourceAttributesAreReadAsTheSpecificationSays() {
        var attributes = Settings.fromEnvironment(Map.of(
                "OTEL_SERVICE_NAME", "app-a",
                "OTEL_RESOURCE_ATTRIBUTES", " team = a%2Cb%20c%C3%A9 ,deployment.environment.name=lab,service.name=x,k=1+1"))
                .resourceAttributes().getAttributes().asMap();
        assertThat(attributes.size(), is(4));
        assertThat(attributes.get(io.opentelemetry.api.common.AttributeKey.stringKey("team")), is("a,b cé"));
        assertThat("'+' is not a space", attributes.get(io.opentelemetry.api.common.AttributeKey.stringKey("k")),
                   is("1+1"));
        assertThat("OTEL_SERVICE_NAME wins",
                   attributes.get(io.opentelemetry.semconv.ServiceAttributes.SERVICE_NAME), is("app-a"));
    }

    @Test
    void serviceNameInResourceAttributesNeedsOtelServiceName() {
        SettingsException error = assertThrows(SettingsException.class, () -> Settings.fromEnvironment(
                Map.of("OTEL_RESOURCE_ATTRIBUTES", "service.name=app-a")));
        assertThat(error.getMessage(), containsString("invalid OTEL_RESOURCE_ATTRIBUTES='service.name=app-a'"));
        assertThat(error.getMessage(), containsString("OTEL_SERVICE_NAME rather than service.name"));
        assertThrows(SettingsException.class, () -> Settings.fromEnvironment(
                Map.of("OTEL_RESOURCE_ATTRIBUTES", "service.name=app-a", "OTEL_SERVICE_NAME", "")),
                "an empty OTEL_SERVICE_NAME is unset");
    }

    /** The SDK would keep "%ZZ" as written and turn the lone byte E9 (é in Latin-1) into U+FFFD. */
    @ParameterizedTest
    @ValueSource(strings = {"team=%ZZ", "team=%E9", "team=a%", "team=%C3", "a=1,team=%C3%A9%2"})
    void resourceAttributesThatDoNotPercentDecodeAreRefused(String value) {
        SettingsException error = assertThrows(SettingsException.class, () -> Settings.fromEnvironment(
                Map.of("OTEL_RESOURCE_ATTRIBUTES", value)));
        assertThat(error.getMessage(), startsWith("invalid OTEL_RESOURCE_ATTRIBUTES='" + value + "': expected "
                                                  + "comma-separated key=value pairs with percent-encoded values"));
        assertThat(error.getMessage(), containsString("('%' and two hex digits per byte of a UTF-8 character"));
    }

    @Test
    void resourceAttributesWithoutValueAreRejected() {
        SettingsException error = assertThrows(SettingsException.class, () -> Settings.fromEnvironment(
                Map.of("OTEL_RESOURCE_ATTRIBUTES", "team=a,lab")));
        assertThat(error.getMessage(), is("invalid OTEL_RESOURCE_ATTRIBUTES='team=a,lab': expected comma-separated "
                                          + "key=value pairs with percent-encoded values, "
                                          + "e.g. deployment.environment.name=lab,team=observability"));
    }

    @Test
    void otelVariablesThisServiceDoesNotReadAreRefusedByNameOnly() {
        SettingsException error = assertThrows(SettingsException.class, () -> Settings.fromEnvironment(
                Map.of("OTEL_PROPAGATORS", "b3", "OTEL_EXPORTER_OTLP_HEADERS", "authorization=secret",
                       "OTEL_SERVICE_NAME", "app-a", "OTEL_TRACES_EXPORTER", "")));
        assertThat(error.getMessage(), is(
                "unsupported OTEL_EXPORTER_OTLP_HEADERS, OTEL_PROPAGATORS: this service reads only the OpenTelemetry "
                + "variables OTEL_BSP_MAX_EXPORT_BATCH_SIZE, OTEL_BSP_MAX_QUEUE_SIZE, OTEL_BSP_SCHEDULE_DELAY, "
                + "OTEL_GRPC_ENDPOINT, OTEL_HTTP_ENDPOINT, OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME, "
                + "OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG (MODE and its endpoint variable choose the exporter)"));
        assertThat(error.getMessage(), not(containsString("secret")));
    }

    @Test
    void httpModeRejectsHostPortWithoutScheme() {
        SettingsException error = assertThrows(SettingsException.class, () -> Settings.fromEnvironment(
                Map.of("MODE", "jaeger-http", "JAEGER_HTTP_ENDPOINT", "jaeger-collector:4318")));
        assertThat(error.getMessage(), containsString("JAEGER_HTTP_ENDPOINT"));
        assertThat(error.getMessage(), containsString("the http(s) URL of the traces endpoint"));
    }
}
