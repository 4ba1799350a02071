package dev.aegis.state;

import org.apache.spark.api.java.function.MapFunction;
import org.apache.spark.api.java.function.MapPartitionsFunction;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.KeyValueGroupedDataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.streaming.OutputMode;
import org.apache.spark.sql.streaming.TimeMode;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;

/** Entry point for PySpark (through the JVM gateway): routed rows in, featurized rows out. */
public final class FeatureState {
    private FeatureState() {
    }

    /**
     * Apply the feature processor to routed rows (columns of the config's input schema, with
     * {@code route} and {@code key}); {@code initial}, when not null, seeds the state on a new
     * checkpoint (same columns). A streaming input runs in event-time mode and needs a watermark;
     * a batch input (tests, one-off featurization) has no frontier and no timers.
     */
    public static Dataset<Row> apply(Dataset<Row> routed, String configJson, Dataset<Row> initial) {
        StateConfig config = StateConfig.parse(configJson);
        boolean streaming = routed.isStreaming();
        FeatureProcessor processor = new FeatureProcessor(configJson, streaming);
        TimeMode mode = streaming ? TimeMode.EventTime() : TimeMode.None();
        KeyValueGroupedDataset<String, Row> grouped = keyed(routed);
        if (initial == null) {
            return grouped.transformWithState(processor, mode, OutputMode.Append(), Encoders.row(config.outputSchema()));
        }
        return grouped.transformWithState(processor, mode, OutputMode.Append(), keyed(initial),
                Encoders.row(config.outputSchema()), Encoders.row(initial.schema()));
    }

    /**
     * Join the processor's half rows (output of {@link #apply}) into one row per transaction: a
     * repartition by transaction id and a stateless {@link HalvesMerge} per partition. Stateless,
     * so a streaming query plans it once rather than as a stateful aggregation. The output has the
     * half rows' columns without {@code route}.
     */
    public static Dataset<Row> mergeHalves(Dataset<Row> halves, String configJson) {
        StateConfig config = StateConfig.parse(configJson);
        StructType in = halves.schema();
        HalvesMerge merge = new HalvesMerge(config, in.fieldNames());
        StructType out = new StructType();
        for (String name : merge.outputFields()) {
            StructField field = in.apply(name);
            out = out.add(field);
        }
        return halves.repartition(halves.col("transaction_id"))
                .mapPartitions((MapPartitionsFunction<Row, Row>) merge::merge, Encoders.row(out));
    }

    private static KeyValueGroupedDataset<String, Row> keyed(Dataset<Row> rows) {
        int route = rows.schema().fieldIndex("route");
        int key = rows.schema().fieldIndex("key");
        return rows.groupByKey((MapFunction<Row, String>) r -> r.getString(route) + ":" + r.getString(key),
                Encoders.STRING());
    }
}
