package dev.aegis.state;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;

import org.junit.jupiter.api.Test;

class StateCacheTest {
    private static KeyState state(String... ids) {
        KeyState s = new KeyState();
        long us = 10;
        for (String id : ids) {
            s.add(new KeyState.Event(us, id, new double[] {us * 1.5}, new String[] {"t-" + id}));
            us += 10;
        }
        return s;
    }

    @Test
    void aStateIsFoundOnlyForTheExactBytesItWasSavedWith() {
        StateCache cache = new StateCache();
        KeyState s = state("a", "b");
        byte[] bytes = s.encode(1, 1);
        cache.put("k", bytes, s, 1 << 20);
        assertSame(s, cache.take("k", bytes.clone()));
        assertNull(cache.take("k", bytes), "taken out while in use: a second take misses");
        cache.put("k", bytes, s, 1 << 20);
        byte[] other = state("a", "c").encode(1, 1);
        assertNull(cache.take("k", other), "a rolled-back or rewritten store value misses");
        assertNull(cache.take("k", bytes), "and the stale entry is gone");
        cache.put("k", bytes, s, 1 << 20);
        assertNull(cache.take("k", null), "no stored value: no state");
    }

    @Test
    void leastRecentlyUsedEntriesGoPastTheCap() {
        StateCache cache = new StateCache();
        KeyState a = state("a");
        byte[] bytes = a.encode(1, 1);
        long cap = bytes.length * 2L;
        cache.put("1", bytes, a, cap);
        cache.put("2", bytes, a, cap);
        cache.put("3", bytes, a, cap);
        assertEquals(2, cache.counters()[2]);
        assertNull(cache.take("1", bytes));
        assertSame(a, cache.take("3", bytes));
        assertEquals(bytes.length, cache.counters()[3]);
    }

    @Test
    void reEncodingADecodedStateGivesTheSameBytes() {
        KeyState s = state("x", "y", "z");
        s.addFraud("y", 99);
        s.pending.add("z");
        byte[] bytes = s.encode(1, 1);
        KeyState back = KeyState.decode(bytes, 1, 1);
        assertArrayEquals(bytes, back.encode(1, 1));
        back.add(new KeyState.Event(25, "w", new double[] {1.0}, new String[] {"t-w"}));
        KeyState fresh = KeyState.decode(bytes, 1, 1);
        fresh.add(new KeyState.Event(25, "w", new double[] {1.0}, new String[] {"t-w"}));
        assertArrayEquals(fresh.encode(1, 1), back.encode(1, 1));
    }
}
