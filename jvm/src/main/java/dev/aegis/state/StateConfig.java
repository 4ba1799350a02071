package dev.aegis.state;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.spark.sql.types.StructType;

/**
 * What the Python side passes in (stream/state.py builds it from features/catalog.py): the
 * routes with their features, the lateness, the retention and the row layouts.
 */
public final class StateConfig implements Serializable {
    private static final long serialVersionUID = 1L;

    /** One route: the entity a key belongs to (customer, terminal) and its features. */
    public static final class Route implements Serializable {
        private static final long serialVersionUID = 1L;
        public final String name;
        public final List<FeatureSpec> features = new ArrayList<>();
        /** Numeric source columns kept per event (amount, ...), in slot order. */
        public final List<String> numeric = new ArrayList<>();
        /** String source columns kept per event (terminal_id for new-pair features), in slot order. */
        public final List<String> strings = new ArrayList<>();
        /** Whether this route's rows carry the transaction's columns to the output. */
        public final boolean carries;

        Route(String name, JsonNode node) {
            this.name = name;
            this.carries = node.path("carry").asBoolean(false);
            for (JsonNode f : node.get("features")) {
                FeatureSpec spec = new FeatureSpec(f);
                if (spec.op == Operation.IS_NEW_PAIR) {
                    spec.sourceSlot = slot(strings, spec.source);
                } else if (spec.op != Operation.COUNT && spec.op != Operation.SECONDS_SINCE_PREVIOUS
                        && spec.op != Operation.FRAUD_RATE) {
                    spec.sourceSlot = slot(numeric, spec.source);
                }
                features.add(spec);
            }
        }

        private static int slot(List<String> columns, String name) {
            int at = columns.indexOf(name);
            if (at >= 0) {
                return at;
            }
            columns.add(name);
            return columns.size() - 1;
        }
    }

    static final long DEFAULT_CACHE_MEGABYTES = 64;

    public final Map<String, Route> routes = new LinkedHashMap<>();
    public final long latenessUs;
    public final long retentionUs;
    /** Cap on the decoded key states the executor keeps between micro-batches (0: none kept). */
    public final long cacheBytes;
    public final String inputDdl;
    public final String outputDdl;
    public final List<String> carry = new ArrayList<>();

    private StateConfig(JsonNode root) {
        int version = root.path("format").asInt(-1);
        if (version != 1) {
            throw new IllegalArgumentException("aegis-state: config format " + version + " is not 1");
        }
        this.latenessUs = root.get("lateness_us").asLong();
        this.retentionUs = root.get("retention_us").asLong();
        this.cacheBytes = root.path("cache_megabytes").asLong(DEFAULT_CACHE_MEGABYTES) << 20;
        this.inputDdl = root.get("input_schema").asText();
        this.outputDdl = root.get("output_schema").asText();
        for (JsonNode c : root.get("carry")) {
            carry.add(c.asText());
        }
        root.get("routes").fields().forEachRemaining(e -> routes.put(e.getKey(), new Route(e.getKey(), e.getValue())));
        if (latenessUs < 0 || retentionUs <= 0) {
            throw new IllegalArgumentException("aegis-state: lateness must be >= 0 and retention > 0");
        }
    }

    public static StateConfig parse(String json) {
        try {
            return new StateConfig(new ObjectMapper().readTree(json));
        } catch (java.io.IOException e) {
            throw new IllegalArgumentException("aegis-state: config is not JSON: " + e.getMessage(), e);
        }
    }

    public StructType inputSchema() {
        return StructType.fromDDL(inputDdl);
    }

    public StructType outputSchema() {
        return StructType.fromDDL(outputDdl);
    }

    public Route route(String name) {
        Route route = routes.get(name);
        if (route == null) {
            throw new IllegalArgumentException("aegis-state: unknown route '" + name + "'");
        }
        return route;
    }
}
