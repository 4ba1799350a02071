package dev.aegis.state;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.NoSuchElementException;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;

/**
 * The processor's half rows of a transaction (one per route) joined into one row, within a
 * partition whose rows are hash-partitioned by transaction id.
 *
 * <p>A plain function over an iterator, so it runs as a stateless {@code mapPartitions} in the
 * streaming plan (planned once, unlike an aggregation, which a streaming query would make
 * stateful). The processor emits every half of a transaction in the same micro-batch; a
 * transaction whose halves are not all there is not emitted (as the aggregation it replaces did).
 */
public final class HalvesMerge implements Serializable {
    private static final long serialVersionUID = 1L;

    private final String[] routes;
    private final int routeIn;
    private final int idIn;
    private final int lateIn;
    /** For each output column: the route whose half supplies it (index into {@link #routes}). */
    private final int[] sourceRoute;
    /** For each output column: its index in the input row. */
    private final int[] sourceIndex;
    private final int lateOut;
    private final String[] outputFields;

    /** A merge of half rows whose columns are {@code inputFields}, in order. */
    public HalvesMerge(StateConfig config, String[] inputFields) {
        this.routes = config.routes.keySet().toArray(new String[0]);
        int carrying = -1;
        Map<String, Integer> featureRoute = new HashMap<>();
        for (int r = 0; r < routes.length; r++) {
            StateConfig.Route route = config.routes.get(routes[r]);
            if (route.carries) {
                carrying = r;
            }
            for (FeatureSpec spec : route.features) {
                featureRoute.put(spec.name, r);
            }
        }
        if (carrying < 0) {
            throw new IllegalArgumentException("aegis-state: no route carries the transaction's columns");
        }
        List<String> fields = List.of(inputFields);
        this.routeIn = required(fields, "route");
        this.idIn = required(fields, "transaction_id");
        this.lateIn = required(fields, "is_late");
        List<String> out = new ArrayList<>();
        List<Integer> from = new ArrayList<>();
        List<Integer> index = new ArrayList<>();
        for (int i = 0; i < inputFields.length; i++) {
            if (i == routeIn) {
                continue;
            }
            out.add(inputFields[i]);
            from.add(featureRoute.getOrDefault(inputFields[i], carrying));
            index.add(i);
        }
        this.outputFields = out.toArray(new String[0]);
        this.sourceRoute = from.stream().mapToInt(Integer::intValue).toArray();
        this.sourceIndex = index.stream().mapToInt(Integer::intValue).toArray();
        this.lateOut = out.indexOf("is_late");
    }

    private static int required(List<String> fields, String name) {
        int at = fields.indexOf(name);
        if (at < 0) {
            throw new IllegalArgumentException("aegis-state: the half rows have no column '" + name + "'");
        }
        return at;
    }

    /** The merged row's columns: the half rows' columns without {@code route}, in their order. */
    public String[] outputFields() {
        return outputFields.clone();
    }

    /** Merged rows of one partition's halves, each emitted once its last half arrives. */
    public Iterator<Row> merge(Iterator<Row> halves) {
        return new Iterator<>() {
            private final Map<String, Row[]> pending = new HashMap<>();
            private Row next;

            @Override
            public boolean hasNext() {
                while (next == null && halves.hasNext()) {
                    next = offer(halves.next());
                }
                return next != null;
            }

            @Override
            public Row next() {
                if (!hasNext()) {
                    throw new NoSuchElementException();
                }
                Row row = next;
                next = null;
                return row;
            }

            private Row offer(Row half) {
                int route = routeIndex(half.getString(routeIn));
                String id = half.getString(idIn);
                Row[] seen = pending.computeIfAbsent(id, k -> new Row[routes.length]);
                if (seen[route] == null) {
                    seen[route] = half;
                }
                for (Row r : seen) {
                    if (r == null) {
                        return null;
                    }
                }
                pending.remove(id);
                return joined(seen);
            }
        };
    }

    private int routeIndex(String route) {
        for (int r = 0; r < routes.length; r++) {
            if (routes[r].equals(route)) {
                return r;
            }
        }
        throw new IllegalArgumentException("aegis-state: a half row of unknown route '" + route + "'");
    }

    private Row joined(Row[] halves) {
        Object[] values = new Object[sourceIndex.length];
        for (int j = 0; j < values.length; j++) {
            values[j] = halves[sourceRoute[j]].get(sourceIndex[j]);
        }
        boolean late = false;
        for (Row half : halves) {
            late |= !half.isNullAt(lateIn) && half.getBoolean(lateIn);
        }
        values[lateOut] = late;
        return RowFactory.create(values);
    }
}
