// Reading and writing the BM25 index file; the layout is in bm25_format.hpp.
#include "bm25_format.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <system_error>

#include "crc32.hpp"

namespace secondopinion {

namespace {

constexpr char kMagic[8] = {'\x89', 'S', 'O', 'B', 'M', '2', '5', '\n'};
constexpr std::uint32_t kByteOrderMark = 0x01020304;
constexpr std::uint64_t kHeaderBytes = 64;
constexpr std::uint64_t kEntryBytes = 32;
constexpr std::uint64_t kAlign = 64;
constexpr std::uint64_t kMetaBytes = 64;
constexpr std::uint64_t kMaxSections = 64;
constexpr std::uint64_t kMaxDocs = std::numeric_limits<std::uint32_t>::max() - 1;
constexpr std::uint64_t kMaxTerms = StringIdMap::kMissing - 1;

enum Section : std::uint32_t {
  kMeta = 1,
  kDocLen,
  kPostOffsets,
  kPostDocs,
  kPostTf,
  kVocabOffsets,
  kVocabBytes,
  kIdOffsets,
  kIdBytes,
  kStopOffsets,
  kStopBytes,
};
constexpr std::uint32_t kSectionCount = 11;
constexpr std::array<std::uint32_t, kSectionCount + 1> kElementSize = {0, kMetaBytes, 4, 8, 4, 4,
                                                                       8, 1,          8, 1, 8, 1};
constexpr std::array<const char*, kSectionCount + 1> kSectionName = {
    "",           "meta",        "doc_len",    "post_offsets", "post_docs",    "post_tf",
    "vocab_offsets", "vocab_bytes", "id_offsets", "id_bytes",    "stop_offsets", "stop_bytes"};

template <class T>
void put(unsigned char* p, T value) {
  std::memcpy(p, &value, sizeof value);
}
template <class T>
T get(const unsigned char* p) {
  T value;
  std::memcpy(&value, p, sizeof value);
  return value;
}

std::uint64_t align_up(std::uint64_t x) { return (x + kAlign - 1) / kAlign * kAlign; }

// ---------------------------------------------------------------- writing

struct OutSection {
  std::uint32_t id;
  const void* data;
  std::uint64_t count;
  std::uint64_t offset = 0;
  std::uint64_t bytes() const { return count * kElementSize[id]; }
};

[[noreturn]] void throw_io(const std::string& what, const std::string& path) {
  throw std::system_error(errno, std::generic_category(), what + " '" + path + "'");
}

class TempFile {
 public:
  explicit TempFile(std::string path) : path_(std::move(path)) {
    file_ = std::fopen(path_.c_str(), "wb");
    if (file_ == nullptr) throw_io("cannot create", path_);
  }
  ~TempFile() {
    if (file_ != nullptr) std::fclose(file_);
    if (!committed_) std::remove(path_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  void write(const void* data, std::size_t size) {
    if (size != 0 && std::fwrite(data, 1, size, file_) != size) throw_io("cannot write", path_);
  }
  void seek(long offset) {
    if (std::fseek(file_, offset, SEEK_SET) != 0) throw_io("cannot seek in", path_);
  }
  void commit_as(const std::string& final_path) {
    const int flushed = std::fflush(file_);
    const int synced = flushed == 0 ? ::fsync(::fileno(file_)) : -1;
    const int closed = std::fclose(file_);
    file_ = nullptr;
    if (flushed != 0 || synced != 0 || closed != 0) throw_io("cannot write", path_);
    if (std::rename(path_.c_str(), final_path.c_str()) != 0) throw_io("cannot rename", path_);
    committed_ = true;
  }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
  bool committed_ = false;
};

}  // namespace

void write_bm25_file(const Bm25Index::Impl& ix, const std::string& path) {
  const AnalyzerConfig& config = ix.analyzer.config();
  std::vector<std::uint64_t> stop_offsets{0};
  std::string stop_bytes;
  for (const std::string& w : config.stopwords) {
    stop_bytes += w;
    stop_offsets.push_back(stop_bytes.size());
  }
  std::array<unsigned char, kMetaBytes> meta{};
  put<std::uint64_t>(&meta[0], ix.num_docs);
  put<std::uint64_t>(&meta[8], ix.num_terms);
  put<std::uint64_t>(&meta[16], ix.num_postings);
  put<std::uint64_t>(&meta[24], ix.total_length);
  put<float>(&meta[32], ix.params.k1);
  put<float>(&meta[36], ix.params.b);
  meta[40] = config.lowercase ? 1 : 0;
  meta[41] = static_cast<unsigned char>(config.stemmer);

  std::vector<OutSection> sections = {
      {kMeta, meta.data(), 1},
      {kDocLen, ix.doc_len, ix.num_docs},
      {kPostOffsets, ix.post_offsets, ix.num_terms + 1},
      {kPostDocs, ix.post_docs, ix.num_postings},
      {kPostTf, ix.post_tf, ix.num_postings},
      {kVocabOffsets, ix.vocab_offsets, ix.num_terms + 1},
      {kVocabBytes, ix.vocab_bytes, ix.vocab_offsets[ix.num_terms]},
      {kIdOffsets, ix.id_offsets, ix.num_docs + 1},
      {kIdBytes, ix.id_bytes, ix.id_offsets[ix.num_docs]},
      {kStopOffsets, stop_offsets.data(), stop_offsets.size()},
      {kStopBytes, stop_bytes.data(), stop_bytes.size()},
  };
  const std::uint64_t header_size = kHeaderBytes + kEntryBytes * sections.size();
  std::uint64_t end = header_size;
  for (OutSection& s : sections) {
    s.offset = align_up(end);
    end = s.offset + s.bytes();
  }
  const std::uint64_t file_size = end;

  // Write to a temporary name and rename, so a crash never leaves a
  // half-written file under the real name.
  TempFile out(path + ".tmp." + std::to_string(::getpid()));
  std::vector<unsigned char> header(header_size, 0);
  out.write(header.data(), header.size());  // placeholder until the CRCs are known
  static const std::array<unsigned char, kAlign> zeros{};
  std::uint32_t payload_crc = 0;
  std::uint64_t pos = header_size;
  for (const OutSection& s : sections) {
    const std::size_t pad = static_cast<std::size_t>(s.offset - pos);
    out.write(zeros.data(), pad);
    payload_crc = crc32(payload_crc, zeros.data(), pad);
    out.write(s.data, static_cast<std::size_t>(s.bytes()));
    payload_crc = crc32(payload_crc, s.data, static_cast<std::size_t>(s.bytes()));
    pos = s.offset + s.bytes();
  }

  std::memcpy(&header[0], kMagic, sizeof kMagic);
  put<std::uint32_t>(&header[8], kBm25FormatVersion);
  put<std::uint32_t>(&header[12], kByteOrderMark);
  put<std::uint64_t>(&header[16], file_size);
  put<std::uint32_t>(&header[24], static_cast<std::uint32_t>(header_size));
  put<std::uint32_t>(&header[28], static_cast<std::uint32_t>(sections.size()));
  put<std::uint32_t>(&header[32], payload_crc);
  for (std::size_t i = 0; i < sections.size(); ++i) {
    unsigned char* e = &header[kHeaderBytes + kEntryBytes * i];
    put<std::uint32_t>(e, sections[i].id);
    put<std::uint32_t>(e + 4, kElementSize[sections[i].id]);
    put<std::uint64_t>(e + 8, sections[i].offset);
    put<std::uint64_t>(e + 16, sections[i].count);
  }
  put<std::uint32_t>(&header[36], crc32(0, header.data(), header.size()));
  out.seek(0);
  out.write(header.data(), header.size());
  out.commit_as(path);
}

// ---------------------------------------------------------------- reading

namespace {

class MappedFile {
 public:
  MappedFile(void* addr, std::size_t size) : addr_(addr), size_(size) {}
  ~MappedFile() { ::munmap(addr_, size_); }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

 private:
  void* addr_;
  std::size_t size_;
};

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

class Reader {
 public:
  Reader(std::string path, const unsigned char* base, std::uint64_t size)
      : path_(std::move(path)), base_(base), size_(size) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw std::invalid_argument("'" + path_ + "' is not a valid BM25 index: " + what);
  }

  std::unique_ptr<Bm25Index::Impl> parse(std::shared_ptr<const void> storage);

 private:
  struct Span {
    const unsigned char* data = nullptr;
    std::uint64_t count = 0;
    bool present = false;
  };

  void check_header();
  void read_sections();
  template <class T>
  const T* array(std::uint32_t id, std::uint64_t expected_count) const {
    const Span& s = spans_[id];
    if (s.count != expected_count) {
      fail(std::string("section ") + kSectionName[id] + " has " + std::to_string(s.count) +
           " entries, expected " + std::to_string(expected_count));
    }
    return reinterpret_cast<const T*>(s.data);
  }
  // offsets[0] == 0, non-decreasing, offsets[count - 1] == total.
  void check_offsets(std::uint32_t id, const std::uint64_t* offsets, std::uint64_t count,
                     std::uint64_t total) const;

  std::string path_;
  const unsigned char* base_;
  std::uint64_t size_;
  std::uint64_t header_size_ = 0;
  std::array<Span, kSectionCount + 1> spans_{};
};

void Reader::check_header() {
  if (size_ < sizeof kMagic || std::memcmp(base_, kMagic, sizeof kMagic) != 0) {
    throw std::invalid_argument("'" + path_ +
                                "' is not a secondopinion BM25 index (unrecognised file "
                                "signature; was it written by BM25Index.save?)");
  }
  if (size_ < kHeaderBytes) {
    fail("truncated: " + std::to_string(size_) + " bytes, shorter than the " +
         std::to_string(kHeaderBytes) + "-byte header");
  }
  const auto version = get<std::uint32_t>(base_ + 8);
  if (version != kBm25FormatVersion) {
    fail("format version " + std::to_string(version) + ", but this build reads version " +
         std::to_string(kBm25FormatVersion) + " (written by a newer secondopinion?)");
  }
  if (get<std::uint32_t>(base_ + 12) != kByteOrderMark) {
    fail("written with a different byte order (this build reads little-endian files)");
  }
  const auto declared = get<std::uint64_t>(base_ + 16);
  if (declared != size_) {
    fail((size_ < declared ? "truncated: " : "unexpected trailing data: ") +
         std::to_string(size_) + " bytes, the header says " + std::to_string(declared));
  }
  const auto header_size = get<std::uint32_t>(base_ + 24);
  const auto count = get<std::uint32_t>(base_ + 28);
  if (count > kMaxSections || header_size != kHeaderBytes + kEntryBytes * count ||
      header_size > size_) {
    fail("corrupt header (section table size)");
  }
  header_size_ = header_size;
  std::vector<unsigned char> header(base_, base_ + header_size);
  put<std::uint32_t>(&header[36], 0);
  if (crc32(0, header.data(), header.size()) != get<std::uint32_t>(base_ + 36)) {
    fail("header checksum mismatch (the file is corrupt)");
  }
  if (crc32(0, base_ + header_size, static_cast<std::size_t>(size_ - header_size)) !=
      get<std::uint32_t>(base_ + 32)) {
    fail("checksum mismatch (the file is corrupt)");
  }
}

void Reader::read_sections() {
  const auto count = get<std::uint32_t>(base_ + 28);
  for (std::uint32_t i = 0; i < count; ++i) {
    const unsigned char* e = base_ + kHeaderBytes + kEntryBytes * i;
    const auto id = get<std::uint32_t>(e);
    const auto element = get<std::uint32_t>(e + 4);
    const auto offset = get<std::uint64_t>(e + 8);
    const auto n = get<std::uint64_t>(e + 16);
    if (id == 0 || id > kSectionCount) fail("unknown section id " + std::to_string(id));
    const std::string name = kSectionName[id];
    if (spans_[id].present) fail("section " + name + " appears twice");
    if (element != kElementSize[id]) fail("section " + name + " has the wrong element size");
    if (offset % 8 != 0 || offset < header_size_ || offset > size_ ||
        n > (size_ - offset) / element) {
      fail("section " + name + " lies outside the file");
    }
    spans_[id] = Span{base_ + offset, n, true};
  }
  for (std::uint32_t id = 1; id <= kSectionCount; ++id) {
    if (!spans_[id].present) fail(std::string("section ") + kSectionName[id] + " is missing");
  }
}

void Reader::check_offsets(std::uint32_t id, const std::uint64_t* offsets, std::uint64_t count,
                           std::uint64_t total) const {
  if (offsets[0] != 0 || offsets[count - 1] != total) {
    fail(std::string("section ") + kSectionName[id] + " does not span its data");
  }
  for (std::uint64_t i = 1; i < count; ++i) {
    if (offsets[i] < offsets[i - 1]) {
      fail(std::string("section ") + kSectionName[id] + " is not ascending");
    }
  }
}

std::unique_ptr<Bm25Index::Impl> Reader::parse(std::shared_ptr<const void> storage) {
  check_header();
  read_sections();

  const unsigned char* meta = array<unsigned char>(kMeta, 1);
  const auto n_docs = get<std::uint64_t>(meta);
  const auto n_terms = get<std::uint64_t>(meta + 8);
  const auto n_postings = get<std::uint64_t>(meta + 16);
  const auto total_length = get<std::uint64_t>(meta + 24);
  Bm25Params params{get<float>(meta + 32), get<float>(meta + 36)};
  const unsigned lowercase = meta[40];
  const unsigned stemmer = meta[41];
  if (n_docs == 0 || n_docs > kMaxDocs) fail("bad document count " + std::to_string(n_docs));
  if (n_terms > kMaxTerms) fail("bad term count " + std::to_string(n_terms));
  if (lowercase > 1 || stemmer > 2) fail("unknown analyzer settings");
  try {
    validate_bm25_params(params);
  } catch (const std::invalid_argument& e) {
    fail(std::string("stored parameters: ") + e.what());
  }

  const auto* doc_len = array<std::uint32_t>(kDocLen, n_docs);
  const auto* post_offsets = array<std::uint64_t>(kPostOffsets, n_terms + 1);
  const auto* post_docs = array<std::uint32_t>(kPostDocs, n_postings);
  const auto* post_tf = array<std::uint32_t>(kPostTf, n_postings);
  const auto* vocab_offsets = array<std::uint64_t>(kVocabOffsets, n_terms + 1);
  const auto* vocab_bytes = array<char>(kVocabBytes, spans_[kVocabBytes].count);
  const auto* id_offsets = array<std::uint64_t>(kIdOffsets, n_docs + 1);
  const auto* id_bytes = array<char>(kIdBytes, spans_[kIdBytes].count);
  const std::uint64_t n_stop_offsets = spans_[kStopOffsets].count;
  if (n_stop_offsets == 0) fail("section stop_offsets is empty");
  const auto* stop_offsets = array<std::uint64_t>(kStopOffsets, n_stop_offsets);
  const auto* stop_bytes = array<char>(kStopBytes, spans_[kStopBytes].count);

  check_offsets(kPostOffsets, post_offsets, n_terms + 1, n_postings);
  check_offsets(kVocabOffsets, vocab_offsets, n_terms + 1, spans_[kVocabBytes].count);
  check_offsets(kIdOffsets, id_offsets, n_docs + 1, spans_[kIdBytes].count);
  check_offsets(kStopOffsets, stop_offsets, n_stop_offsets, spans_[kStopBytes].count);

  // Search indexes the score array by post_docs and reads doc_len there: an
  // out-of-range value would be an out-of-bounds write, so check them all.
  for (std::uint64_t t = 0; t < n_terms; ++t) {
    std::uint64_t prev = 0;
    for (std::uint64_t i = post_offsets[t]; i < post_offsets[t + 1]; ++i) {
      const std::uint32_t d = post_docs[i];
      if (d >= n_docs || (i > post_offsets[t] && d <= prev)) {
        fail("postings of term " + std::to_string(t) + " are out of range or not ascending");
      }
      if (post_tf[i] == 0) fail("a posting has term frequency 0");
      // A document holds at least its postings' terms. Without this, a
      // crafted file (checksums fixed) with length 0 under a posting, a small
      // average length and a huge k1 made scores NaN (0 * inf).
      if (post_tf[i] > doc_len[d]) {
        fail("a posting's term frequency exceeds its document's length");
      }
      prev = d;
    }
  }
  std::uint64_t sum = 0;
  for (std::uint64_t d = 0; d < n_docs; ++d) sum += doc_len[d];
  if (sum != total_length) fail("document lengths do not add up to the stored total");

  AnalyzerConfig config;
  config.lowercase = lowercase == 1;
  config.stemmer = static_cast<StemmerKind>(stemmer);
  config.stopwords.clear();
  for (std::uint64_t i = 0; i + 1 < n_stop_offsets; ++i) {
    config.stopwords.emplace_back(stop_bytes + stop_offsets[i],
                                  stop_offsets[i + 1] - stop_offsets[i]);
  }

  auto ix = std::make_unique<Bm25Index::Impl>(Analyzer(std::move(config)), params);
  ix->storage = std::move(storage);
  ix->num_docs = n_docs;
  ix->num_terms = n_terms;
  ix->num_postings = n_postings;
  ix->total_length = total_length;
  ix->doc_len = doc_len;
  ix->post_offsets = post_offsets;
  ix->post_docs = post_docs;
  ix->post_tf = post_tf;
  ix->vocab_offsets = vocab_offsets;
  ix->vocab_bytes = vocab_bytes;
  ix->id_offsets = id_offsets;
  ix->id_bytes = id_bytes;
  for (std::uint64_t t = 1; t < n_terms; ++t) {
    if (!(ix->term(t - 1) < ix->term(t))) fail("the vocabulary is not strictly ascending");
  }
  const auto dup = find_duplicate_id(id_offsets, id_bytes, n_docs);
  if (dup.first >= 0) {
    fail("duplicate document id '" + std::string(ix->doc_id(static_cast<std::size_t>(dup.second))) +
         "'");
  }
  ix->index_vocabulary();
  return ix;
}

}  // namespace

std::unique_ptr<Bm25Index::Impl> read_bm25_file(const std::string& path, bool use_mmap) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) throw_io("cannot open", path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw_io("cannot stat", path);
  if (!S_ISREG(st.st_mode)) {
    throw std::invalid_argument("'" + path + "' is not a regular file");
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size == 0) throw std::invalid_argument("'" + path + "' is empty, not a BM25 index");

  if (use_mmap) {
    void* addr = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.get(), 0);
    if (addr == MAP_FAILED) throw_io("cannot map", path);
    auto mapping = std::make_shared<MappedFile>(addr, size);
    Reader reader(path, static_cast<const unsigned char*>(addr), size);
    return reader.parse(std::move(mapping));
  }
  // 8-byte words so that u64 arrays are aligned, as they are in a mapping.
  auto words = std::shared_ptr<std::uint64_t[]>(new std::uint64_t[(size + 7) / 8]);
  auto* bytes = reinterpret_cast<unsigned char*>(words.get());
  std::uint64_t done = 0;
  while (done < size) {
    const ssize_t got = ::read(fd.get(), bytes + done, static_cast<std::size_t>(size - done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) throw_io("cannot read", path);
    if (got == 0) break;  // the file shrank while being read; the size check reports it
    done += static_cast<std::uint64_t>(got);
  }
  Reader reader(path, bytes, done);
  return reader.parse(std::move(words));
}

}  // namespace secondopinion
