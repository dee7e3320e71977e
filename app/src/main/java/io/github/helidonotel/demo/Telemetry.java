package io.github.helidonotel.demo;

import java.net.InetAddress;
import java.net.UnknownHostException;
import java.time.Duration;
import java.util.Map;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

import io.helidon.tracing.Tracer;
import io.helidon.tracing.providers.opentelemetry.HelidonOpenTelemetry;

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
 * propagation. Application code only sees the API; Helidon gets the SDK wrapped as its tracer.
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
    private final Optional<Tracer> tracer;

    /** {@code sdk} is null with {@link ExportMode#NONE}; Helidon gets a tracer only over an SDK. */
    private Telemetry(OpenTelemetry openTelemetry, OpenTelemetrySdk sdk) {
        this.openTelemetry = openTelemetry;
        this.sdk = sdk;
        this.tracer = Optional.ofNullable(sdk).map(
                it -> HelidonOpenTelemetry.create(it, it.getTracer(Telemetry.class.getPackageName()), Map.of()));
    }

    /**
     * Builds the SDK for {@code settings}. With {@link ExportMode#NONE} there is no SDK and no
     * tracer for Helidon: the no-op API stands in for the application's own calls, so that a
     * baseline pays for no part of tracing.
     */
    public static Telemetry create(Settings settings, String serviceVersion) {
        if (settings.mode() == ExportMode.NONE) {
            return new Telemetry(OpenTelemetry.noop(), null);
        }
        SdkTracerProvider tracerProvider = SdkTracerProvider.builder()
                .setResource(resource(settings.serviceName(), serviceVersion))
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
     * The tracer Helidon's server observer and client service create spans with; empty with
     * {@link ExportMode#NONE}. (Helidon's observer given a tracer over the no-op API still builds,
     * activates and ends its span objects and works out the requested URI for every request:
     * leaving it out made MODE=none serve about a third more requests to {@code /} in the
     * benchmark, so a baseline must not include it.)
     */
    public Optional<Tracer> helidonTracer() {
        return tracer;
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

    private static Resource resource(String serviceName, String serviceVersion) {
        return Resource.getDefault().merge(Resource.create(Attributes.of(
                ServiceAttributes.SERVICE_NAME, serviceName,
                ServiceAttributes.SERVICE_VERSION, serviceVersion,
                HOST_NAME, hostName(),
                ServiceAttributes.SERVICE_INSTANCE_ID, UUID.randomUUID().toString())));
    }

    private static String hostName() {
        try {
            return InetAddress.getLocalHost().getHostName();
        } catch (UnknownHostException e) {
            return "unknown";
        }
    }
}
