"""The HMM stage (rules prepare_sequences, fit_hmm, select_state_count, decode_states).

METHOD.md sections 3 to 5.
"""
