package io.github.helidonotel.demo;

import java.net.InetAddress;
import java.net.UnknownHostException;
import java.time.Duration;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

import io.opentelemetry.api.OpenTelemetry;
import io.opentelemetry.api.baggage.propagation.W3CBaggagePropagator;
import io.opentelemetry.api.common.AttributeKey;
import io.opentelemetry.api.common.Attributes;
import io.opentelemetry.api.trace.propagation.W3CTraceContextPropagator;
import io.opentelemetry.context.propagation.ContextPropagators;
import io.opentelemetry.context.propagation.TextMapPropagator;
import io.opentelemetry.exporter.otlp.http.trace.OtlpHttpSpanExporter;
import io.opentelemetry.exporter.otlp.trace.OtlpGrpcSpanExporter;
import io.opentelemetry.sdk.common.CompletableResultCode;
import io.opentelemetry.sdk.OpenTelemetrySdk;
import io.opentelemetry.sdk.resources.Resource;
import io.opentelemetry.sdk.trace.SdkTracerProvider;
import io.opentelemetry.sdk.trace.export.BatchSpanProcessor;
import io.opentelemetry.sdk.trace.export.SpanExporter;
import io.opentelemetry.semconv.ServiceAttributes;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The OpenTelemetry SDK of one service instance, assembled in code in one place: resource, OTLP
 * exporter chosen by {@link ExportMode}, batch span processor, W3C trace context and baggage
 * propagation. Application code only sees the API; server and client tracing get the SDK.
 */
public final class Telemetry implements AutoCloseable {
    private static final Logger LOGGER = LoggerFactory.getLogger(Telemetry.class);
    /** Still incubating in the semantic conventions, so not in the stable semconv artifact. */
    private static final AttributeKey<String> HOST_NAME = AttributeKey.stringKey("host.name");
    private static final Duration EXPORT_TIMEOUT = Duration.ofSeconds(10);
    /** Bounded wait at shutdown for queued spans to be exported. */
    private static final Duration SHUTDOWN_TIMEOUT = Duration.ofSeconds(15);

    private final OpenTelemetry openTelemetry;
    private final OpenTelemetrySdk sdk;

    /** {@code sdk} is null with {@link ExportMode#NONE}. */
    private Telemetry(OpenTelemetry openTelemetry, OpenTelemetrySdk sdk) {
        this.openTelemetry = openTelemetry;
        this.sdk = sdk;
    }

    /**
     * Builds the SDK for {@code settings}. With {@link ExportMode#NONE} there is no SDK: the no-op
     * API stands in for the application's own calls, and {@link #tracing()} is empty, so that a
     * baseline pays for no part of tracing.
     */
    public static Telemetry create(Settings settings, String serviceVersion) {
        if (settings.mode() == ExportMode.NONE) {
            return new Telemetry(OpenTelemetry.noop(), null);
        }
        SdkTracerProvider tracerProvider = SdkTracerProvider.builder()
                .setResource(resource(settings, serviceVersion))
                .setSampler(settings.sampler())
                .addSpanProcessor(BatchSpanProcessor.builder(exporter(settings))
                                          .setScheduleDelay(settings.exportDelay())
                                          .setMaxQueueSize(settings.exportQueueSize())
                                          .setMaxExportBatchSize(settings.exportBatchSize())
                                          .build())
                .build();
        OpenTelemetrySdk sdk = OpenTelemetrySdk.builder()
                .setTracerProvider(tracerProvider)
                .setPropagators(ContextPropagators.create(TextMapPropagator.composite(
                        W3CTraceContextPropagator.getInstance(), W3CBaggagePropagator.getInstance())))
                .build();
        return new Telemetry(sdk, sdk);
    }

    /**
     * The SDK that server and client tracing create spans with; empty with {@link ExportMode#NONE},
     * where no tracing is installed at all. (Tracing over the no-op API still costs: Helidon's
     * observer, given a no-op tracer, built, activated and ended its span objects for every
     * request, and leaving it out made MODE=none serve about a third more requests to {@code /}
     * in the benchmark, so a baseline must not include any of it.)
     */
    public Optional<OpenTelemetry> tracing() {
        return Optional.ofNullable(sdk);
    }

    /** The OpenTelemetry API of this instance (propagators included). */
    public OpenTelemetry openTelemetry() {
        return openTelemetry;
    }

    /**
     * Flushes queued spans and stops the exporter; waits at most {@link #SHUTDOWN_TIMEOUT} so a
     * dead backend cannot hold up a service stop.
     */
    @Override
    public void close() {
        if (sdk == null) {
            return;
        }
        CompletableResultCode flushed = sdk.getSdkTracerProvider().shutdown()
                .join(SHUTDOWN_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
        if (!flushed.isSuccess()) {
            // Said here, through SLF4J: in a shutdown hook the SDK's own JUL messages may be lost,
            // since the JDK resets JUL's handlers (the bridge among them) as it shuts down.
            LOGGER.warn("spans still queued at shutdown may be lost: the exporter did not confirm them within {}",
                        SHUTDOWN_TIMEOUT);
        }
    }

    private static SpanExporter exporter(Settings settings) {
        String endpoint = settings.exportEndpoint().orElseThrow().toString();
        return switch (settings.mode().protocol()) {
            case GRPC -> OtlpGrpcSpanExporter.builder().setEndpoint(endpoint).setTimeout(EXPORT_TIMEOUT).build();
            case HTTP -> OtlpHttpSpanExporter.builder()
                    .setEndpoint(endpoint)
                    .setTimeout(EXPORT_TIMEOUT)
                    .setComponentLoader(new JdkHttpSenderLoader())
                    .build();
            case NONE -> throw new IllegalStateException("mode " + settings.mode().value() + " exports nothing");
        };
    }

    /**
     * The SDK's defaults, then what the service knows of itself, then the user's
     * {@code OTEL_RESOURCE_ATTRIBUTES}: a later one wins, as with the autoconfigured SDK, where the
     * environment's attributes override those of resource detectors.
     */
    private static Resource resource(Settings settings, String serviceVersion) {
        return Resource.getDefault()
                .merge(Resource.create(Attributes.of(
                        ServiceAttributes.SERVICE_NAME, settings.serviceName(),
                        ServiceAttributes.SERVICE_VERSION, serviceVersion,
                        HOST_NAME, hostName(),
                        ServiceAttributes.SERVICE_INSTANCE_ID, UUID.randomUUID().toString())))
                .merge(settings.resourceAttributes());
    }

    private static String hostName() {
        try {
            return InetAddress.getLocalHost().getHostName();
        } catch (UnknownHostException e) {
            return "unknown";
        }
    }
}
