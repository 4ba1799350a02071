package dev.aegis.state;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;

class WindowMathTest {
    private static final long S = 1_000_000L;

    private static FeatureSpec spec(String op, long lengthS, long offsetS, int slot) throws Exception {
        String json = String.format("{\"name\":\"f\",\"op\":\"%s\",\"source\":\"amount\",\"length_us\":%d,"
                + "\"offset_us\":%d}", op, lengthS * S, offsetS * S);
        FeatureSpec spec = new FeatureSpec(new ObjectMapper().readTree(json));
        spec.sourceSlot = slot;
        return spec;
    }

    private static KeyState.Event event(long second, String id, double amount, String terminal) {
        return new KeyState.Event(second * S, id, new double[] {amount}, new String[] {terminal});
    }

    private static KeyState state(KeyState.Event... events) {
        KeyState state = new KeyState();
        for (KeyState.Event e : events) {
            state.add(e);
        }
        return state;
    }

    @Test
    void windowsEndAtTheTargetAndIncludeItsEqualTimePeers() throws Exception {
        KeyState.Event target = event(100, "b", 30.0, "t1");
        KeyState s = state(event(0, "x", 1000.0, "t1"), event(40, "a", 10.0, "t1"), target,
                event(100, "c", 20.0, "t2"), event(101, "later", 5.0, "t1"));
        // (100 - 60, 100]: a is at 40 (outside: the start is exclusive), b and its peer c inside.
        assertEquals(2.0, WindowMath.evaluate(spec("count", 60, 0, 0), s, target));
        assertEquals(50.0, WindowMath.evaluate(spec("sum", 60, 0, 0), s, target));
        assertEquals(25.0, WindowMath.evaluate(spec("mean", 60, 0, 0), s, target));
        assertEquals(30.0, WindowMath.evaluate(spec("max", 60, 0, 0), s, target));
        assertEquals(5.0, WindowMath.evaluate(spec("std", 60, 0, 0), s, target), 1e-12);
        assertEquals(3.0, WindowMath.evaluate(spec("count", 61, 0, 0), s, target));
    }

    @Test
    void anOffsetWindowCanBeEmpty() throws Exception {
        KeyState.Event target = event(100, "b", 30.0, "t1");
        KeyState s = state(event(40, "a", 10.0, "t1"), target);
        assertEquals(1.0, WindowMath.evaluate(spec("count", 30, 50, 0), s, target));  // (20, 50]
        assertEquals(0.0, WindowMath.evaluate(spec("count", 30, 70, 0), s, target));  // (0, 30]
        assertNull(WindowMath.evaluate(spec("mean", 30, 70, 0), s, target));
        assertNull(WindowMath.evaluate(spec("fraud_rate", 30, 70, -1), s, target));
    }

    @Test
    void thePreviousEventIsOrderedByTimeThenIdAndCapped() throws Exception {
        KeyState.Event target = event(100, "m", 1.0, "t1");
        KeyState s = state(event(10, "a", 1.0, "t1"), event(100, "b", 1.0, "t1"), target, event(100, "z", 1.0, "t1"));
        assertEquals(0.0, WindowMath.evaluate(spec("seconds_since_previous", 1000, 0, -1), s, target));
        KeyState.Event first = event(100, "b", 1.0, "t1");
        assertEquals(90.0, WindowMath.evaluate(spec("seconds_since_previous", 1000, 0, -1), s, first));
        assertEquals(50.0, WindowMath.evaluate(spec("seconds_since_previous", 50, 0, -1), s, first));
        KeyState.Event only = event(5, "o", 1.0, "t1");
        assertNull(WindowMath.evaluate(spec("seconds_since_previous", 50, 0, -1), state(only), only));
    }

    @Test
    void aPairIsNewWithoutAnEarlierEventOnTheSameTerminal() throws Exception {
        KeyState.Event target = event(100, "b", 1.0, "t1");
        assertEquals(1.0, WindowMath.evaluate(spec("is_new_pair", 60, 0, 0),
                state(event(100, "a", 1.0, "t1"), target, event(30, "old", 1.0, "t1")), target));
        assertEquals(0.0, WindowMath.evaluate(spec("is_new_pair", 60, 0, 0),
                state(event(99, "a", 1.0, "t1"), target), target));
        assertEquals(1.0, WindowMath.evaluate(spec("is_new_pair", 60, 0, 0),
                state(event(99, "a", 1.0, "t2"), target), target));
    }

    @Test
    void aFraudCountsOnceReportedByTheTargetsTime() throws Exception {
        KeyState.Event target = event(1000, "t", 1.0, "x");
        KeyState s = state(event(100, "f1", 1.0, "x"), event(200, "f2", 1.0, "x"), event(300, "ok", 1.0, "x"),
                event(400, "f3", 1.0, "x"), target);
        s.addFraud("f1", 900 * S);
        s.addFraud("f2", 1000 * S);  // reported exactly at the target's time: counts
        s.addFraud("f3", 1001 * S);  // reported after: does not
        s.addFraud("f1", 950 * S);  // a later report changes nothing
        FeatureSpec rate = spec("fraud_rate", 900, 500, -1);  // (-400, 500]: f1, f2, ok, f3
        assertEquals(0.5, WindowMath.evaluate(rate, s, target));
    }
}
