"""`ftq simulate`'s shell: the live planner adapted to the simulator, output and plots."""
