package io.github.helidonotel.demo;

import java.util.List;
import java.util.Optional;

import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.core.status.Status;
import org.slf4j.LoggerFactory;

/**
 * The problems logback met while it configured itself from {@code logback.xml}: a {@code LOG_FILE}
 * it could not open (an error: the file appender is left out), a {@code LOG_FILE_MAX_SIZE} it could
 * not read (a warning: a default is used instead; {@link Settings} refuses a bad
 * {@code LOG_FILE_MAX_HISTORY} before this check). Logback only records them as status messages
 * and carries on, so without this check a service would run with its log file missing, and the
 * log shipper tailing that file would have nothing to ship.
 * This configuration raises no warning when its variables are right, so warnings count as well.
 */
final class LoggingStatus {
    private LoggingStatus() {
    }

    /**
     * Throws a {@link SettingsException} that names the log variables and quotes logback, one
     * problem after the other, when logging did not start as they say.
     */
    static void requireStartedAsConfigured(Optional<String> logFile) {
        List<String> problems = configurationProblems();
        if (!problems.isEmpty()) {
            String logFileValue = logFile.map(file -> "='" + file + "'").orElse("");
            throw new SettingsException("logging did not start as LOG_FILE" + logFileValue
                                                + ", LOG_FILE_MAX_SIZE and LOG_FILE_MAX_HISTORY say: "
                                                + String.join("; ", problems));
        }
    }

    /** One line per warning or error, with its cause; empty when logging started as configured. */
    private static List<String> configurationProblems() {
        if (!(LoggerFactory.getILoggerFactory() instanceof LoggerContext context)) {
            return List.of();  // another SLF4J backend: not this service's logback.xml
        }
        return context.getStatusManager().getCopyOfStatusList().stream()
                .filter(status -> status.getLevel() >= Status.WARN)
                .map(LoggingStatus::describe)
                .toList();
    }

    private static String describe(Status status) {
        Throwable cause = status.getThrowable();
        if (cause == null || status.getMessage().contains(cause.toString())) {
            return status.getMessage();
        }
        return status.getMessage() + " (" + cause + ")";
    }
}
