package dev.aegis.state;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.Serializable;

/** One declared feature as the state engine reads it: operation, source column, window. */
public final class FeatureSpec implements Serializable {
    private static final long serialVersionUID = 1L;

    public final String name;
    public final Operation op;
    public final String source;
    public final long lengthUs;
    public final long offsetUs;
    /** Index of the source among the route's numeric or string columns (-1: none). */
    public int sourceSlot = -1;

    FeatureSpec(JsonNode node) {
        this.name = node.get("name").asText();
        this.op = Operation.of(node.get("op").asText());
        this.source = node.path("source").asText("");
        this.lengthUs = node.get("length_us").asLong();
        this.offsetUs = node.path("offset_us").asLong(0);
        if (lengthUs <= 0) {
            throw new IllegalArgumentException("aegis-state: feature " + name + " needs a positive window length");
        }
    }

    /** Inclusive upper bound of the window for a target at {@code targetUs}. */
    long windowEnd(long targetUs) {
        return targetUs - offsetUs;
    }

    /** Exclusive lower bound of the window for a target at {@code targetUs}. */
    long windowStart(long targetUs) {
        return targetUs - offsetUs - lengthUs;
    }
}
