package dev.aegis.state;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.junit.jupiter.api.Test;

class HalvesMergeTest {
    private static final String CONFIG = "{\"format\": 1, \"lateness_us\": 0, \"retention_us\": 100,"
            + " \"input_schema\": \"route string\", \"output_schema\": \"route string\", \"carry\": [\"amount\"],"
            + " \"routes\": {\"c\": {\"carry\": true, \"features\": [{\"name\": \"c_n\", \"op\": \"count\", \"length_us\": 10}]},"
            + " \"t\": {\"carry\": false, \"features\": [{\"name\": \"t_n\", \"op\": \"count\", \"length_us\": 10}]}}}";
    private static final String[] HALVES = {"route", "transaction_id", "is_late", "c_n", "t_n", "amount"};

    private static Row half(String route, String id, boolean late, Double c, Double t, Double amount) {
        return RowFactory.create(route, id, late, c, t, amount);
    }

    private static List<Row> merged(Row... halves) {
        HalvesMerge merge = new HalvesMerge(StateConfig.parse(CONFIG), HALVES);
        List<Row> out = new ArrayList<>();
        Iterator<Row> it = merge.merge(List.of(halves).iterator());
        it.forEachRemaining(out::add);
        return out;
    }

    @Test
    void eachColumnComesFromTheRouteThatOwnsIt() {
        List<Row> out = merged(
                half("t", "a", false, null, 7.0, null),
                half("c", "b", false, 1.0, null, 10.0),
                half("c", "a", false, 2.0, null, 20.0),
                half("t", "b", true, null, 9.0, null));
        assertEquals(2, out.size());
        assertEquals(RowFactory.create("a", false, 2.0, 7.0, 20.0), out.get(0));
        assertEquals(RowFactory.create("b", true, 1.0, 9.0, 10.0), out.get(1), "late if either half is late");
    }

    @Test
    void theOutputDropsTheRouteColumn() {
        HalvesMerge merge = new HalvesMerge(StateConfig.parse(CONFIG), HALVES);
        assertEquals(List.of("transaction_id", "is_late", "c_n", "t_n", "amount"), List.of(merge.outputFields()));
    }

    @Test
    void aTransactionMissingAHalfIsNotEmittedAndARepeatedHalfCountsOnce() {
        List<Row> out = merged(
                half("c", "a", false, 2.0, null, 20.0),
                half("c", "a", false, 3.0, null, 30.0),
                half("c", "lonely", false, 1.0, null, 1.0),
                half("t", "a", false, null, 7.0, null));
        assertEquals(List.of(RowFactory.create("a", false, 2.0, 7.0, 20.0)), out);
    }

    @Test
    void anUnknownRouteIsNamed() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> merged(half("x", "a", false, null, null, null)));
        assertEquals("aegis-state: a half row of unknown route 'x'", e.getMessage());
    }
}
