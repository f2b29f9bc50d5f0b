// Store: which implementation a gallery's name selects (a directory: SQLite; a
// postgresql:// URL: PostgreSQL) and how the name is shown (the URL's password masked).
#include "dualtune/gallery/pg.h"
#include "dualtune/gallery/pg_store.h"
#include "dualtune/gallery/sqlite_store.h"
#include "dualtune/gallery/store.h"

namespace dualtune::gallery {

bool Store::is_url(const std::string& where) { return pg::is_url(where); }

std::string Store::display_name(const std::string& where) { return is_url(where) ? pg::mask_url(where) : where; }

std::unique_ptr<Store> Store::create(const std::string& where) {
  if (is_url(where)) return PgStore::create(where);
  return SqliteStore::create(where);
}

std::unique_ptr<Store> Store::open(const std::string& where, bool read_only) {
  if (is_url(where)) return PgStore::open(where, read_only);
  return SqliteStore::open(where, read_only);
}

}  // namespace dualtune::gallery
