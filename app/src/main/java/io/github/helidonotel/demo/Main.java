package io.github.helidonotel.demo;

import java.util.Optional;

import io.opentelemetry.api.GlobalOpenTelemetry;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.slf4j.bridge.SLF4JBridgeHandler;

/**
 * Start-up in order: logging, settings (and whether logging started as they say), telemetry,
 * server; and a shutdown hook that stops the server before flushing spans, so requests completed
 * before SIGTERM are exported.
 */
public final class Main {
    private Main() {
    }

    public static void main(String[] args) {
        // Helidon and the OpenTelemetry SDK log through JUL: send it to the same logback output.
        SLF4JBridgeHandler.removeHandlersForRootLogger();
        SLF4JBridgeHandler.install();
        Logger logger = LoggerFactory.getLogger(Main.class);

        Settings settings;
        try {
            settings = Settings.fromEnvironment(System.getenv());
            LoggingStatus.requireStartedAsConfigured(settings.logFile());
        } catch (SettingsException e) {
            logger.error("configuration error: {}", e.getMessage());
            System.exit(2);
            return;
        }

        Telemetry telemetry = Telemetry.create(settings, serviceVersion());
        // Registered before any server or client exists, so every library finds the same SDK.
        GlobalOpenTelemetry.set(telemetry.openTelemetry());
        DemoServer server;
        try {
            server = DemoServer.start(settings, telemetry);
        } catch (ServerStartException e) {
            logger.error("{}", e.getMessage());
            System.exit(1);  // not 2: a taken port may be free at the unit's next restart
            return;
        }
        Runtime.getRuntime().addShutdownHook(new Thread(server::close, "demo-shutdown"));
        logger.info("{} listening on port {}, MODE={}{}{}", settings.serviceName(), server.port(),
                    settings.mode().value(),
                    settings.exportEndpoint().map(uri -> ", exporting to " + uri).orElse(""),
                    settings.logFile().map(file -> ", logging to stdout and " + file).orElse(""));
    }

    private static String serviceVersion() {
        return Optional.ofNullable(Main.class.getPackage().getImplementationVersion()).orElse("dev");
    }
}
