package io.github.helidonotel.demo;

/**
 * A configuration variable holds a value the service cannot use. The message names the variable,
 * the value and what would be accepted, so that one log line is enough to fix the unit's
 * environment file.
 */
public class SettingsException extends RuntimeException {
    public SettingsException(String variable, String value, String accepted) {
        this("invalid " + variable + "='" + value + "': expected " + accepted);
    }

    /** For settings that fail only once they are used, e.g. a log file that cannot be opened. */
    public SettingsException(String message) {
        super(message);
    }
}
