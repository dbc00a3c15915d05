import os
import threading

import pytest

from agent.background import BACKGROUND_NICE, run_in_background_priority


@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="no per-thread priorities on this OS")
def test_background_priority_lowers_only_the_calling_thread():
    main_before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen = {}

    def worker() -> None:
        run_in_background_priority()
        seen["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen["nice"] == max(BACKGROUND_NICE, main_before)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main_before
