// Boost.JSON, compiled here once (its header-only mode): no library to link or install. Kept in a
// file of its own so that editing json.cpp does not rebuild it.
#include <boost/json/src.hpp>
