"""The services both front ends call: the Session (one profile's parts), onboarding stages, waits,
rotation, status and revoke, API keys, runtimes, the doctor and its findings, exports."""
