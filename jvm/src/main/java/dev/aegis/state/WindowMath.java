package dev.aegis.state;

import java.util.List;

/**
 * The operations over a key's sorted events, with the batch engine's rules: a window
 * (t - offset - length, t - offset] includes the target and its equal-time peers, a new pair
 * looks strictly before the target, the previous event is ordered by (time, transaction id),
 * a fraud counts once its first report is at or before the target's time. Null means "no rows";
 * the declared fill is applied on the Python side, as for the batch engine.
 */
final class WindowMath {
    private WindowMath() {
    }

    static Double evaluate(FeatureSpec f, KeyState state, KeyState.Event target) {
        List<KeyState.Event> events = state.events;
        long t = target.us;
        long hi = f.windowEnd(t);
        long lo = f.windowStart(t);
        switch (f.op) {
            case SECONDS_SINCE_PREVIOUS: {
                long previous = KeyState.NONE;
                for (int i = events.size() - 1; i >= 0; i--) {
                    KeyState.Event e = events.get(i);
                    if (e.us < t || (e.us == t && e.id.compareTo(target.id) < 0)) {
                        previous = e.us;
                        break;
                    }
                }
                if (previous == KeyState.NONE) {
                    return null;
                }
                return Math.min((t - previous) / 1_000_000.0, f.lengthUs / 1_000_000.0);
            }
            case IS_NEW_PAIR: {
                String pair = target.strings[f.sourceSlot];
                for (KeyState.Event e : events) {
                    if (e.us > lo && e.us < hi && pair.equals(e.strings[f.sourceSlot])) {
                        return 0.0;
                    }
                }
                return 1.0;
            }
            default:
                return aggregate(f, state, events, t, lo, hi);
        }
    }

    private static Double aggregate(FeatureSpec f, KeyState state, List<KeyState.Event> events, long t,
                                    long lo, long hi) {
        long n = 0;
        double sum = 0.0;
        double max = Double.NEGATIVE_INFINITY;
        double avg = 0.0;
        double m2 = 0.0;
        long frauds = 0;
        for (KeyState.Event e : events) {
            if (e.us <= lo) {
                continue;
            }
            if (e.us > hi) {
                break;
            }
            n++;
            if (f.op == Operation.FRAUD_RATE) {
                Long reported = state.frauds.get(e.id);
                if (reported != null && reported <= t) {
                    frauds++;
                }
                continue;
            }
            if (f.sourceSlot < 0) {
                continue;
            }
            double x = e.numbers[f.sourceSlot];
            sum += x;
            if (x > max) {
                max = x;
            }
            // Welford's update, as Spark's central-moment aggregates do it.
            double delta = x - avg;
            double deltaN = delta / n;
            avg += deltaN;
            m2 += delta * (delta - deltaN);
        }
        switch (f.op) {
            case COUNT:
                return (double) n;
            case SUM:
                return n == 0 ? null : sum;
            case MEAN:
                return n == 0 ? null : sum / n;
            case MAX:
                return n == 0 ? null : max;
            case STD:
                return n == 0 ? null : Math.sqrt(m2 / n);
            case FRAUD_RATE:
                return n == 0 ? null : frauds / (double) n;
            default:
                throw new IllegalStateException("aegis-state: " + f.op + " is not an aggregate");
        }
    }
}
