package dev.aegis.state;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import org.apache.spark.sql.streaming.TimerValues;
import org.junit.jupiter.api.Test;

class KeyStateTest {
    private static KeyState.Event event(long us, String id) {
        return new KeyState.Event(us, id, new double[] {us / 10.0}, new String[] {"term-" + id});
    }

    @Test
    void encodingRoundTripsEverything() {
        KeyState s = new KeyState();
        s.add(event(30, "c"));
        s.add(event(10, "a"));
        s.add(event(10, "0"));
        s.addFraud("a", 50);
        s.pending.add("c");
        s.expiryTimerMs = 77;
        KeyState back = KeyState.decode(s.encode(1, 1), 1, 1);
        assertEquals(3, back.events.size());
        assertEquals("0", back.events.get(0).id);  // sorted by (time, id)
        assertEquals("a", back.events.get(1).id);
        assertEquals(3.0, back.events.get(2).numbers[0]);
        assertEquals("term-c", back.events.get(2).strings[0]);
        assertEquals(50L, back.frauds.get("a"));
        assertEquals("c", back.pending.get(0));
        assertEquals(77L, back.expiryTimerMs);
        assertTrue(back.contains("a"));
    }

    @Test
    void anUnknownFormatIsRefusedNamingTheFix() {
        byte[] other = ByteBuffer.allocate(4).putInt(2).array();
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> KeyState.decode(other, 1, 1));
        assertTrue(e.getMessage().contains("new checkpoint"), e.getMessage());
    }

    @Test
    void expiryDropsOldEventsAndTheirLabelsButKeepsPendingOnes() {
        KeyState s = new KeyState();
        s.add(event(10, "old"));
        s.add(event(20, "waiting"));
        s.add(event(100, "new"));
        s.pending.add("waiting");
        s.addFraud("old", 15);
        s.addFraud("unseen-early", 40);
        s.addFraud("unseen-late", 60);
        s.addFraud("new", 120);
        s.expire(50);
        assertFalse(s.contains("old"));
        assertTrue(s.contains("waiting"));
        assertTrue(s.contains("new"));
        assertEquals(java.util.Set.of("unseen-late", "new"), s.frauds.keySet());
        s.expire(KeyState.NONE);
        assertEquals(2, s.events.size());
    }

    @Test
    void theFrontierIsTheWatermarksLastMicrosecond() {
        assertEquals(KeyState.NONE, FeatureProcessor.frontier(timers(0)));
        assertEquals(5_999L, FeatureProcessor.frontier(timers(5)));
    }

    private static TimerValues timers(long watermarkMs) {
        return new TimerValues() {
            @Override
            public long getCurrentProcessingTimeInMs() {
                return 0;
            }

            @Override
            public long getCurrentWatermarkInMs() {
                return watermarkMs;
            }
        };
    }
}
