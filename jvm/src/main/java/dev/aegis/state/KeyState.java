package dev.aegis.state;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * What one key (a customer or a terminal) keeps: its events inside the retention, sorted by
 * (event time, transaction id), the fraud labels routed to it, the ids still waiting for the
 * frontier, and its registered timers. Stored as one versioned binary value.
 */
final class KeyState {
    private static final int FORMAT = 1;
    static final long NONE = Long.MIN_VALUE;

    static final class Event {
        final long us;
        final String id;
        final double[] numbers;
        final String[] strings;
        /** The event's part of the stored value, kept once known: a save copies it, not re-encodes it. */
        private byte[] encoded;

        Event(long us, String id, double[] numbers, String[] strings) {
            this.us = us;
            this.id = id;
            this.numbers = numbers;
            this.strings = strings;
        }

        byte[] encoded(int numberCount, int stringCount) {
            if (encoded == null) {
                try {
                    ByteArrayOutputStream bytes = new ByteArrayOutputStream(16 + id.length() + 8 * numberCount);
                    DataOutputStream out = new DataOutputStream(bytes);
                    out.writeLong(us);
                    out.writeUTF(id);
                    for (int i = 0; i < numberCount; i++) {
                        out.writeDouble(numbers[i]);
                    }
                    for (int i = 0; i < stringCount; i++) {
                        out.writeUTF(strings[i] == null ? "" : strings[i]);
                    }
                    out.flush();
                    encoded = bytes.toByteArray();
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            }
            return encoded;
        }
    }

    private static final Comparator<Event> ORDER =
            Comparator.<Event>comparingLong(e -> e.us).thenComparing(e -> e.id);

    final List<Event> events = new ArrayList<>();
    final Set<String> ids = new HashSet<>();
    /** Transaction id -> first time a fraud label was reported for it (µs). */
    final Map<String, Long> frauds = new HashMap<>();
    /** Ids of events not yet released (only with a positive allowed lateness). */
    final List<String> pending = new ArrayList<>();
    long expiryTimerMs = NONE;
    long pendingTimerMs = NONE;

    boolean isEmpty() {
        return events.isEmpty() && frauds.isEmpty() && pending.isEmpty();
    }

    boolean contains(String id) {
        return ids.contains(id);
    }

    void add(Event event) {
        int at = Collections.binarySearch(events, event, ORDER);
        events.add(at < 0 ? -at - 1 : at, event);
        ids.add(event.id);
    }

    Event find(String id) {
        for (int i = events.size() - 1; i >= 0; i--) {
            if (events.get(i).id.equals(id)) {
                return events.get(i);
            }
        }
        return null;
    }

    long newestUs() {
        return events.isEmpty() ? NONE : events.get(events.size() - 1).us;
    }

    void addFraud(String id, long reportedUs) {
        frauds.merge(id, reportedUs, Math::min);
    }

    /** Drop events at or before the cutoff, and fraud labels that can no longer matter. */
    void expire(long cutoffUs) {
        if (cutoffUs == NONE) {
            return;
        }
        int drop = 0;
        while (drop < events.size() && events.get(drop).us <= cutoffUs && !pending.contains(events.get(drop).id)) {
            ids.remove(events.get(drop).id);
            drop++;
        }
        if (drop > 0) {
            events.subList(0, drop).clear();
        }
        if (!frauds.isEmpty()) {
            // A label is reported after its transaction: reported at or before the cutoff, with no
            // kept transaction, it points at an expired (or never seen) one.
            Iterator<Map.Entry<String, Long>> it = frauds.entrySet().iterator();
            while (it.hasNext()) {
                Map.Entry<String, Long> entry = it.next();
                if (!ids.contains(entry.getKey()) && entry.getValue() <= cutoffUs) {
                    it.remove();
                }
            }
        }
    }

    byte[] encode(int numbers, int strings) {
        try {
            int size = 64;
            for (Event e : events) {
                size += e.encoded(numbers, strings).length;
            }
            ByteArrayOutputStream bytes = new ByteArrayOutputStream(size + 24 * (frauds.size() + pending.size()));
            DataOutputStream out = new DataOutputStream(bytes);
            out.writeInt(FORMAT);
            out.writeLong(expiryTimerMs);
            out.writeLong(pendingTimerMs);
            out.writeInt(events.size());
            for (Event e : events) {
                out.write(e.encoded(numbers, strings));
            }
            out.writeInt(frauds.size());
            for (Map.Entry<String, Long> entry : frauds.entrySet()) {
                out.writeUTF(entry.getKey());
                out.writeLong(entry.getValue());
            }
            out.writeInt(pending.size());
            for (String id : pending) {
                out.writeUTF(id);
            }
            out.flush();
            return bytes.toByteArray();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static KeyState decode(byte[] value, int numbers, int strings) {
        KeyState state = new KeyState();
        if (value == null) {
            return state;
        }
        try {
            ByteArrayInputStream source = new ByteArrayInputStream(value);
            DataInputStream in = new DataInputStream(source);
            int format = in.readInt();
            if (format != FORMAT) {
                throw new IllegalStateException("aegis-state: stored key state has format " + format
                        + ", this build reads " + FORMAT + " (start from a new checkpoint)");
            }
            state.expiryTimerMs = in.readLong();
            state.pendingTimerMs = in.readLong();
            int n = in.readInt();
            for (int k = 0; k < n; k++) {
                int start = value.length - source.available();
                long us = in.readLong();
                String id = in.readUTF();
                double[] nums = new double[numbers];
                for (int i = 0; i < numbers; i++) {
                    nums[i] = in.readDouble();
                }
                String[] strs = new String[strings];
                for (int i = 0; i < strings; i++) {
                    strs[i] = in.readUTF();
                }
                Event event = new Event(us, id, nums, strs);
                event.encoded = java.util.Arrays.copyOfRange(value, start, value.length - source.available());
                state.events.add(event);
                state.ids.add(id);
            }
            int f = in.readInt();
            for (int k = 0; k < f; k++) {
                state.frauds.put(in.readUTF(), in.readLong());
            }
            int p = in.readInt();
            for (int k = 0; k < p; k++) {
                state.pending.add(in.readUTF());
            }
            return state;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
