package io.github.helidonotel.demo;

import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.util.HexFormat;
import java.util.Map;
import java.util.regex.Pattern;

import io.opentelemetry.sdk.autoconfigure.ResourceConfiguration;
import io.opentelemetry.sdk.autoconfigure.spi.ConfigProperties;
import io.opentelemetry.sdk.autoconfigure.spi.ConfigurationException;
import io.opentelemetry.sdk.autoconfigure.spi.internal.DefaultConfigProperties;
import io.opentelemetry.sdk.resources.Resource;
import io.opentelemetry.semconv.ServiceAttributes;

/**
 * The resource attributes a user adds with {@code OTEL_RESOURCE_ATTRIBUTES}, read as the
 * specification says (comma-separated {@code key=value} pairs, values percent-decoded, the
 * service name of {@code OTEL_SERVICE_NAME} over a {@code service.name} among them) by the SDK's
 * autoconfigure module rather than by a parser of this service's own.
 */
final class ResourceAttributes {
    static final String VARIABLE = "OTEL_RESOURCE_ATTRIBUTES";
    private static final String ACCEPTED = "comma-separated key=value pairs with percent-encoded values, "
            + "e.g. deployment.environment.name=lab,team=observability";
    /** autoconfigure's property names for the two variables */
    private static final String ATTRIBUTES_PROPERTY = "otel.resource.attributes";
    private static final String SERVICE_NAME_PROPERTY = "otel.service.name";
    /** A '%' that does not start an escape ('%' and two hex digits). */
    private static final Pattern STRAY_PERCENT = Pattern.compile("%(?![0-9A-Fa-f]{2})");
    /**
     * Escapes one after the other: the bytes of whole characters, as a character's UTF-8 bytes
     * are never split between escapes and a written character (which never encodes to a lone
     * continuation byte).
     */
    private static final Pattern ESCAPED_BYTES = Pattern.compile("(?:%[0-9A-Fa-f]{2})+");

    private ResourceAttributes() {
    }

    /**
     * The attributes of {@code value} (the variable's), with {@code service.name} set to
     * {@code serviceName}. A {@code service.name} in the variable is refused unless the service
     * name was configured ({@code OTEL_SERVICE_NAME} set, and so winning over it): the log lines
     * take their {@code resource.service.name} from {@code OTEL_SERVICE_NAME}, and would name
     * another service than the spans.
     */
    static Resource parse(String value, String serviceName, boolean serviceNameConfigured) {
        // The autoconfigure module reads the process's environment unless it is given the values;
        // given them, each instance of a test JVM reads its own. DefaultConfigProperties is the
        // module's own ConfigProperties (in an "internal" package, but the only implementation it
        // offers over a map).
        ConfigProperties config = DefaultConfigProperties.createFromMap(
                Map.of(ATTRIBUTES_PROPERTY, value, SERVICE_NAME_PROPERTY, serviceName));
        try {
            Map<String, String> encoded = config.getMap(ATTRIBUTES_PROPERTY);  // split, not yet decoded
            if (!encoded.values().stream().allMatch(ResourceAttributes::decodes)) {
                throw new SettingsException(VARIABLE, value, ACCEPTED + " ('%' and two hex digits per byte"
                        + " of a UTF-8 character, e.g. %C3%A9 for é)");
            }
            boolean namesTheService = encoded.containsKey(ServiceAttributes.SERVICE_NAME.getKey());
            if (namesTheService && !serviceNameConfigured) {
                throw new SettingsException(VARIABLE, value, ACCEPTED + ", and the service's name in "
                        + "OTEL_SERVICE_NAME rather than service.name (the log lines take it from there)");
            }
            return ResourceConfiguration.createEnvironmentResource(config);
        } catch (ConfigurationException e) {
            throw new SettingsException(VARIABLE, value, ACCEPTED);
        }
    }

    /**
     * Whether the SDK can decode {@code encodedValue} as the specification asks. It decodes
     * leniently, keeping a stray '%' as written and turning bytes that are not UTF-8 into U+FFFD,
     * where the specification has such a variable discarded with an error. Only checked here: the
     * SDK still does the decoding.
     */
    private static boolean decodes(String encodedValue) {
        return !STRAY_PERCENT.matcher(encodedValue).find()
                && ESCAPED_BYTES.matcher(encodedValue).results()
                        .allMatch(escapes -> isUtf8(HexFormat.of().parseHex(escapes.group().replace("%", ""))));
    }

    private static boolean isUtf8(byte[] bytes) {
        try {
            StandardCharsets.UTF_8.newDecoder().decode(ByteBuffer.wrap(bytes));  // reports, never replaces
            return true;
        } catch (CharacterCodingException e) {
            return false;
        }
    }
}
