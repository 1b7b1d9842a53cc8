# Sourced by .ci/run: a real Secret Service (gnome-keyring) in a private D-Bus session, so the
# secret-store tests run against a real OS keyring. Where the system package manager is not
# available, nothing is started and those tests skip with a visible reason.
start_secret_service() {
    if ! command -v gnome-keyring-daemon >/dev/null 2>&1 || ! command -v dbus-launch >/dev/null 2>&1; then
        if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
            (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnome-keyring dbus dbus-x11) \
                >/dev/null 2>&1 || echo "ci: could not install gnome-keyring; real-keyring tests will skip"
        else
            echo "ci: no system package manager; real-keyring tests will skip"
        fi
    fi
    if command -v gnome-keyring-daemon >/dev/null 2>&1 && command -v dbus-launch >/dev/null 2>&1; then
        eval "$(dbus-launch --sh-syntax)"
        export DBUS_SESSION_BUS_ADDRESS DBUS_SESSION_BUS_PID
        XDG_RUNTIME_DIR="$(mktemp -d)"; chmod 700 "$XDG_RUNTIME_DIR"; export XDG_RUNTIME_DIR
        # The keyring's own password; a throwaway for a throwaway keyring.
        # Its keyring files go to a throwaway folder, never the real home.
        printf "ci-only-keyring" | XDG_DATA_HOME="$(mktemp -d)" gnome-keyring-daemon --unlock --components=secrets --daemonize >/dev/null
        export KLARNA_MTLS_REAL_KEYRING=1
        trap 'kill "$DBUS_SESSION_BUS_PID" 2>/dev/null || true' EXIT
        echo "ci: real Secret Service running in a private D-Bus session"
    fi
}
