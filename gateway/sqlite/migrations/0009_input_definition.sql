-- The receiver's MessageDefinition a decision was made with (what the
-- policies read as input.definition: its url and focus entries, as JSON), so
-- that a policy replay decides with it as the decision did. NULL when the
-- decision had none, and for every input retained before this column: a
-- replay of those decides without a definition, as before. Content of the
-- input: it goes with its row when the retention purge deletes the input.
ALTER TABLE decision_inputs ADD COLUMN definition TEXT;
