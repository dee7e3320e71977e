package io.github.helidonotel.demo;

import java.util.Arrays;
import java.util.Locale;
import java.util.Optional;
import java.util.function.Function;
import java.util.stream.Collectors;

/**
 * Choices written by name in a variable ({@code MODE}, {@code OTEL_TRACES_SAMPLER}): one lookup
 * rule for all of them (case-insensitive, surrounding blanks ignored) and one way of listing the
 * accepted names in error messages.
 */
final class ConfigNames {
    private ConfigNames() {
    }

    /** The choice among {@code choices} whose name is {@code value}, if any. */
    static <T> Optional<T> find(T[] choices, Function<T, String> name, String value) {
        String wanted = value.strip().toLowerCase(Locale.ROOT);
        return Arrays.stream(choices).filter(choice -> name.apply(choice).equals(wanted)).findFirst();
    }

    /** The names of {@code choices}, comma separated. */
    static <T> String list(T[] choices, Function<T, String> name) {
        return Arrays.stream(choices).map(name).collect(Collectors.joining(", "));
    }
}
