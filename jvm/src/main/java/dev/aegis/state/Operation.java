package dev.aegis.state;

/**
 * The window operations the state engine implements, one per declared operation of
 * features/spec.py. Each reads the events of one key inside a window ending at the target.
 */
public enum Operation {
    COUNT, SUM, MEAN, MAX, STD, SECONDS_SINCE_PREVIOUS, IS_NEW_PAIR, FRAUD_RATE;

    public static Operation of(String name) {
        switch (name) {
            case "count": return COUNT;
            case "sum": return SUM;
            case "mean": return MEAN;
            case "max": return MAX;
            case "std": return STD;
            case "seconds_since_previous": return SECONDS_SINCE_PREVIOUS;
            case "is_new_pair": return IS_NEW_PAIR;
            case "fraud_rate": return FRAUD_RATE;
            default: throw new IllegalArgumentException("aegis-state: no state implementation for operation '" + name + "'");
        }
    }
}
