# A package so that `tests.support` (the shared fakes and fixture paths) imports from every suite.
