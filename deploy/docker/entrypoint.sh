#!/usr/bin/env bash
# Entry point of the Aegis image for Spark on Kubernetes (the contract of Spark's own
# kubernetes/dockerfiles/spark/entrypoint.sh, which the pyspark wheel does not ship):
#
#   driver ARGS...    the driver pod: spark-submit --deploy-mode client ARGS...
#   executor          an executor pod, configured by the SPARK_* variables Spark sets on the pod
#   anything else     run as is (the API container runs its own command)
set -euo pipefail

: "${SPARK_HOME:?SPARK_HOME must be set by the image}"
classpath="${SPARK_CONF_DIR:-$SPARK_HOME/conf}:$SPARK_HOME/jars/*${SPARK_CLASSPATH:+:$SPARK_CLASSPATH}"

case "${1:-}" in
    driver)
        shift
        exec /usr/bin/tini -s -- "$SPARK_HOME/bin/spark-submit" \
            --conf "spark.driver.bindAddress=${SPARK_DRIVER_BIND_ADDRESS:?}" \
            --conf "spark.executorEnv.SPARK_DRIVER_POD_IP=${SPARK_DRIVER_BIND_ADDRESS}" \
            --deploy-mode client "$@"
        ;;
    executor)
        shift
        # Spark passes executor JVM options as SPARK_JAVA_OPT_0, SPARK_JAVA_OPT_1, ... (order matters).
        java_opts=()
        while IFS='=' read -r name _; do
            java_opts+=("${!name}")
        done < <(env | grep -E '^SPARK_JAVA_OPT_[0-9]+=' | sort -t_ -k4 -n)
        exec /usr/bin/tini -s -- java "${java_opts[@]}" \
            "-Xms${SPARK_EXECUTOR_MEMORY:?}" "-Xmx${SPARK_EXECUTOR_MEMORY}" \
            -cp "$classpath" org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend \
            --driver-url "${SPARK_DRIVER_URL:?}" --executor-id "${SPARK_EXECUTOR_ID:?}" \
            --cores "${SPARK_EXECUTOR_CORES:?}" --app-id "${SPARK_APPLICATION_ID:?}" \
            --hostname "${SPARK_EXECUTOR_POD_IP:?}" --resourceProfileId "${SPARK_RESOURCE_PROFILE_ID:-0}" \
            --podName "${SPARK_EXECUTOR_POD_NAME:?}"
        ;;
    *)
        exec /usr/bin/tini -s -- "$@"
        ;;
esac
