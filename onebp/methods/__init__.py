"""What a method is (``Method``), which methods exist (the registry), the checks every method must
pass, and the core methods: OneBP and its TwoBP twin."""
