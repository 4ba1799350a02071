package dev.aegis.state;

import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Decoded key states kept in the executor's memory between micro-batches, each beside the exact
 * bytes it was decoded from or encoded to. The state store stays the truth: a cached state is
 * used only when the stored value is byte for byte the cached one, so a state store rolled back
 * (a failed task, a restart, a replayed micro-batch) simply misses. A state is taken out while a
 * task works on it and put back after its save, so no half-updated state is ever found here.
 * Least recently used entries go once the cached bytes pass the cap.
 */
final class StateCache {
    private static final class Entry {
        final byte[] bytes;
        final KeyState state;

        Entry(byte[] bytes, KeyState state) {
            this.bytes = bytes;
            this.state = state;
        }
    }

    private static final StateCache SHARED = new StateCache();

    private final LinkedHashMap<String, Entry> entries = new LinkedHashMap<>(1 << 12, 0.75f, true);
    private long bytes;
    private long hits;
    private long misses;

    static StateCache shared() {
        return SHARED;
    }

    /** The cached state of {@code key} if it was decoded from exactly {@code stored}; removed from the cache. */
    synchronized KeyState take(String key, byte[] stored) {
        Entry entry = entries.remove(key);
        if (entry == null) {
            misses++;
            return null;
        }
        bytes -= entry.bytes.length;
        if (stored == null || !Arrays.equals(entry.bytes, stored)) {
            misses++;
            return null;
        }
        hits++;
        return entry.state;
    }

    /** Keep {@code state}, which {@code stored} encodes, evicting the oldest entries past {@code capBytes}. */
    synchronized void put(String key, byte[] stored, KeyState state, long capBytes) {
        Entry old = entries.put(key, new Entry(stored, state));
        bytes += stored.length - (old == null ? 0 : old.bytes.length);
        Iterator<Map.Entry<String, Entry>> it = entries.entrySet().iterator();
        while (bytes > capBytes && it.hasNext()) {
            bytes -= it.next().getValue().bytes.length;
            it.remove();
        }
    }

    synchronized void forget(String key) {
        Entry entry = entries.remove(key);
        if (entry != null) {
            bytes -= entry.bytes.length;
        }
    }

    synchronized long[] counters() {
        return new long[] {hits, misses, entries.size(), bytes};
    }
}
