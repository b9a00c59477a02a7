"""AccessLog.breakGlassUsage: the stored window of a (site, clinician)."""


def test_break_glass_usage_unused_is_zero(access_log, site, emergency):
    assert tuple(access_log.breakGlassUsage(site, emergency)) == (0, 0)
