package dev.aegis.state;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.streaming.ExpiredTimerInfo;
import org.apache.spark.sql.streaming.MapState;
import org.apache.spark.sql.streaming.OutputMode;
import org.apache.spark.sql.streaming.StatefulProcessorWithInitialState;
import org.apache.spark.sql.streaming.TTLConfig;
import org.apache.spark.sql.streaming.TimeMode;
import org.apache.spark.sql.streaming.TimerValues;
import org.apache.spark.sql.streaming.ValueState;
import org.apache.spark.sql.types.StructType;
import scala.jdk.javaapi.CollectionConverters;

/**
 * The stream's feature state: keyed by "route:key" (c: customer, t: terminal), it keeps what
 * the declared windows need, featurizes each transaction once the frontier (Spark's event-time
 * watermark, the allowed lateness behind the newest event) passes it, marks the ones that arrive
 * behind the frontier as late, drops repeated transaction ids, and expires events on event-time
 * timers past the retention (the longest look-back plus the lateness).
 */
public final class FeatureProcessor extends StatefulProcessorWithInitialState<String, Row, Row, Row> {
    private static final long serialVersionUID = 1L;

    private final StateConfig config;
    private final StructType inputSchema;
    private final StructType outputSchema;
    private final boolean eventTime;
    private transient ValueState<byte[]> stored;
    private transient MapState<String, Row> pendingRows;
    private transient Layout layout;
    private transient long[] nanos;  // load, update, features, save; printed at close when profiling
    private static final boolean PROFILE = System.getenv("AEGIS_STATE_PROFILE") != null;

    public FeatureProcessor(String configJson, boolean eventTime) {
        this.config = StateConfig.parse(configJson);
        this.eventTime = eventTime;
        this.inputSchema = config.inputSchema();
        this.outputSchema = config.outputSchema();
    }

    /** Column positions, resolved once per task from the declared layouts. */
    private static final class Layout {
        final int kind;
        final int id;
        final int reportedUs;
        final int isFraud;
        final int outLate;
        final int[] carryIn;
        final int[] carryOut;
        final java.util.Map<String, Integer> featureOut = new java.util.HashMap<>();

        Layout(StructType in, StructType out, List<String> carry, StateConfig config) {
            kind = in.fieldIndex("kind");
            id = in.fieldIndex("transaction_id");
            reportedUs = in.fieldIndex("reported_us");
            isFraud = in.fieldIndex("is_fraud");
            outLate = out.fieldIndex("is_late");
            carryIn = new int[carry.size()];
            carryOut = new int[carry.size()];
            for (int i = 0; i < carry.size(); i++) {
                carryIn[i] = in.fieldIndex(carry.get(i));
                carryOut[i] = out.fieldIndex(carry.get(i));
            }
            for (StateConfig.Route route : config.routes.values()) {
                for (FeatureSpec f : route.features) {
                    featureOut.put(f.name, out.fieldIndex(f.name));
                }
            }
        }
    }

    @Override
    public void init(OutputMode outputMode, TimeMode timeMode) {
        stored = getHandle().getValueState("key_state", Encoders.BINARY(), TTLConfig.NONE());
        pendingRows = getHandle().getMapState("pending_rows", Encoders.STRING(), Encoders.row(inputSchema),
                TTLConfig.NONE());
        layout = new Layout(inputSchema, outputSchema, config.carry, config);
        nanos = new long[5];
    }

    @Override
    public void close() {
        if (PROFILE && nanos != null) {
            long[] cache = StateCache.shared().counters();
            System.err.printf("aegis-state profile: keys %d, load %.3fs, update %.3fs, features %.3fs, save %.3fs,"
                    + " cache hits %d misses %d entries %d bytes %d%n", nanos[4], nanos[0] / 1e9, nanos[1] / 1e9,
                    nanos[2] / 1e9, nanos[3] / 1e9, cache[0], cache[1], cache[2], cache[3]);
        }
    }

    @Override
    public scala.collection.Iterator<Row> handleInputRows(String key, scala.collection.Iterator<Row> rows,
                                                          TimerValues timers) {
        long t0 = System.nanoTime();
        StateConfig.Route route = route(key);
        long frontier = eventTime ? frontier(timers) : KeyState.NONE;
        KeyState state = load(route, key);
        long t1 = System.nanoTime();
        state.expire(cutoff(frontier));
        List<Row> out = new ArrayList<>();
        List<Object[]> released = new ArrayList<>();  // {event, row or null, late}
        while (rows.hasNext()) {
            Row row = rows.next();
            String id = row.getString(layout.id);
            if ("label".equals(row.getString(layout.kind))) {
                if (!row.isNullAt(layout.isFraud) && row.getBoolean(layout.isFraud)) {
                    state.addFraud(id, row.getLong(layout.reportedUs));
                }
                continue;
            }
            if (state.contains(id)) {
                continue;  // a repeated delivery of a transaction this key already holds
            }
            KeyState.Event event = event(route, row);
            state.add(event);
            boolean late = frontier != KeyState.NONE && event.us <= frontier;
            if (late || config.latenessUs == 0 || !eventTime) {
                released.add(new Object[] {event, row, late});
            } else {
                state.pending.add(id);
                if (route.carries) {
                    pendingRows.updateValue(id, row);
                }
            }
        }
        releaseDue(route, state, frontier, released);
        long t2 = System.nanoTime();
        for (Object[] r : released) {
            out.add(output(route, state, (KeyState.Event) r[0], (Row) r[1], (Boolean) r[2]));
        }
        long t3 = System.nanoTime();
        save(route, key, state);
        long t4 = System.nanoTime();
        nanos[0] += t1 - t0;
        nanos[1] += t2 - t1;
        nanos[2] += t3 - t2;
        nanos[3] += t4 - t3;
        nanos[4]++;
        return CollectionConverters.asScala(out.iterator());
    }

    @Override
    public scala.collection.Iterator<Row> handleExpiredTimer(String key, TimerValues timers, ExpiredTimerInfo info) {
        StateConfig.Route route = route(key);
        long frontier = frontier(timers);
        KeyState state = load(route, key);
        // The timer that fired is no longer registered.
        if (state.expiryTimerMs == info.getExpiryTimeInMs()) {
            state.expiryTimerMs = KeyState.NONE;
        }
        if (state.pendingTimerMs == info.getExpiryTimeInMs()) {
            state.pendingTimerMs = KeyState.NONE;
        }
        state.expire(cutoff(frontier));
        List<Object[]> released = new ArrayList<>();
        releaseDue(route, state, frontier, released);
        List<Row> out = new ArrayList<>();
        for (Object[] r : released) {
            out.add(output(route, state, (KeyState.Event) r[0], (Row) r[1], (Boolean) r[2]));
        }
        save(route, key, state);
        return CollectionConverters.asScala(out.iterator());
    }

    /**
     * One call per key on a new checkpoint: {@code seed} holds the key's bronze history as a list
     * ({@code rows}) of routed rows, so the key's state is written once, not once per event.
     */
    @Override
    public void handleInitialState(String key, Row seed, TimerValues timers) {
        StateConfig.Route route = route(key);
        KeyState state = load(route, key);
        for (Row row : seed.<Row>getList(seed.fieldIndex("rows"))) {
            String id = row.getString(row.fieldIndex("transaction_id"));
            if ("label".equals(row.getString(row.fieldIndex("kind")))) {
                int fraud = row.fieldIndex("is_fraud");
                if (!row.isNullAt(fraud) && row.getBoolean(fraud)) {
                    state.addFraud(id, row.getLong(row.fieldIndex("reported_us")));
                }
            } else if (!state.contains(id)) {
                state.add(event(route, row));
            }
        }
        save(route, key, state);
    }

    private StateConfig.Route route(String key) {
        return config.route(key.substring(0, key.indexOf(':')));
    }

    private KeyState.Event event(StateConfig.Route route, Row row) {
        double[] numbers = new double[route.numeric.size()];
        for (int i = 0; i < numbers.length; i++) {
            int at = row.fieldIndex(route.numeric.get(i));
            numbers[i] = row.isNullAt(at) ? Double.NaN : ((Number) row.get(at)).doubleValue();
        }
        String[] strings = new String[route.strings.size()];
        for (int i = 0; i < strings.length; i++) {
            Object value = row.get(row.fieldIndex(route.strings.get(i)));
            strings[i] = value == null ? "" : value.toString();
        }
        return new KeyState.Event(row.getLong(row.fieldIndex("event_us")), row.getString(row.fieldIndex("transaction_id")),
                numbers, strings);
    }

    /** Pending events the frontier has passed, in event-time order. */
    private void releaseDue(StateConfig.Route route, KeyState state, long frontier, List<Object[]> released) {
        if (state.pending.isEmpty() || frontier == KeyState.NONE) {
            return;
        }
        Iterator<String> it = state.pending.iterator();
        while (it.hasNext()) {
            String id = it.next();
            KeyState.Event event = state.find(id);
            if (event == null) {
                it.remove();
                continue;
            }
            if (event.us <= frontier) {
                Row row = route.carries ? pendingRows.getValue(id) : null;
                if (route.carries) {
                    pendingRows.removeKey(id);
                }
                released.add(new Object[] {event, row, false});
                it.remove();
            }
        }
    }

    private Row output(StateConfig.Route route, KeyState state, KeyState.Event event, Row row, boolean late) {
        Object[] values = new Object[outputSchema.length()];
        values[0] = route.name;
        values[1] = event.id;
        values[layout.outLate] = late;
        for (FeatureSpec f : route.features) {
            values[layout.featureOut.get(f.name)] = WindowMath.evaluate(f, state, event);
        }
        if (route.carries && row != null) {
            for (int i = 0; i < layout.carryIn.length; i++) {
                values[layout.carryOut[i]] = row.get(layout.carryIn[i]);
            }
        }
        return RowFactory.create(values);
    }

    /** The key's state: the cached decoded one when the stored bytes are exactly what it was decoded from. */
    private KeyState load(StateConfig.Route route, String key) {
        byte[] value = stored.get();  // null when absent: one store read (exists() then get() was two)
        KeyState cached = StateCache.shared().take(cacheKey(route, key), value);
        if (cached != null) {
            return cached;
        }
        return KeyState.decode(value, route.numeric.size(), route.strings.size());
    }

    /** The cache's key: the grouping key, with the layout that decides how its bytes decode. */
    private static String cacheKey(StateConfig.Route route, String key) {
        return route.numeric.size() + "/" + route.strings.size() + "/" + key;
    }

    private void save(StateConfig.Route route, String key, KeyState state) {
        if (state.isEmpty()) {
            setTimer(state.expiryTimerMs, KeyState.NONE);
            setTimer(state.pendingTimerMs, KeyState.NONE);
            stored.clear();
            StateCache.shared().forget(cacheKey(route, key));
            return;
        }
        long horizon = state.newestUs();
        for (long reported : state.frauds.values()) {
            horizon = Math.max(horizon, reported);
        }
        long expiry = Math.floorDiv(horizon + config.retentionUs, 1000L) + 1;
        // The expiry timer moves lazily: one registered earlier than the key's expiry stays, and
        // when it fires, handleExpiredTimer expires what is due and registers the next one. A busy
        // key would otherwise delete and register a timer (four RocksDB writes) every micro-batch.
        if (state.expiryTimerMs == KeyState.NONE || state.expiryTimerMs > expiry) {
            state.expiryTimerMs = setTimer(state.expiryTimerMs, expiry);
        }
        long due = KeyState.NONE;
        for (String id : state.pending) {
            KeyState.Event event = state.find(id);
            if (event != null) {
                long at = Math.floorDiv(event.us, 1000L);
                due = due == KeyState.NONE ? at : Math.min(due, at);
            }
        }
        state.pendingTimerMs = setTimer(state.pendingTimerMs, due);
        byte[] value = state.encode(route.numeric.size(), route.strings.size());
        stored.update(value);
        if (config.cacheBytes > 0) {
            StateCache.shared().put(cacheKey(route, key), value, state, config.cacheBytes);
        }
    }

    private long setTimer(long registered, long wanted) {
        if (registered == wanted || !eventTime) {
            return registered;
        }
        if (registered != KeyState.NONE) {
            getHandle().deleteTimer(registered);
        }
        if (wanted != KeyState.NONE) {
            getHandle().registerTimer(wanted);
        }
        return wanted;
    }

    /** The frontier in µs: the watermark's millisecond rounded up to its last microsecond. */
    static long frontier(TimerValues timers) {
        long watermark = timers.getCurrentWatermarkInMs();
        return watermark <= 0 ? KeyState.NONE : watermark * 1000L + 999L;
    }

    private long cutoff(long frontier) {
        return frontier == KeyState.NONE ? KeyState.NONE : frontier - config.retentionUs;
    }
}
