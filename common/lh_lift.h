/*  =========================================================================
    lh_lift - the playbook-lift test: does recording what worked make
    retrieval better? (`lakehouse playbook-lift`)

    Against a running system (matrixd, embedd, vectord), over the bus:

    1. generate, from a seed, a roster of N workers (name, role, city,
       shift, certification, skills, languages) and add their texts to a
       fresh corpus (vectord index lift_roster_S<seed>);
    2. generate Q staffing queries, each for one worker whose (role, city,
       shift, certification, language) no other worker has, worded with
       synonyms the worker's own text does not use ("lift truck driver",
       "graveyard hours", "30-hour safety card"), so the cold search is
       imperfect; the first half are the training queries, the second half
       the unrelated ones; each training query is also asked reframed
       (the same terms in another sentence) and paraphrased (other words
       for every term, and another sentence);
    3. search every query cold (matrixd.search, k 10);
    4. record each training query's right worker as a playbook entry with
       score 1.0 (matrixd.playbook_bulk into lift_playbook_S<seed>);
    5. search everything again with use_playbook;
    6. report recall@1, recall@5 and MRR (over the top 10) cold and warm
       for the training, reframed, paraphrased and unrelated queries, as
       a markdown table on stdout.

    Exit code: 0 when the training queries lift (recall@1 warm above cold)
    and the unrelated ones do not get worse (MRR warm >= cold), 1
    otherwise or on an error, 2 on a bad command line. The generator is
    deterministic: the same seed, N and Q give the same roster and queries.
    =========================================================================
*/

#ifndef LH_LIFT_H_INCLUDED
#define LH_LIFT_H_INCLUDED

#include "lh_config.h"

#ifdef __cplusplus
extern "C" {
#endif

//  `lakehouse playbook-lift [--seed S] [--workers N] [--queries Q] [--k K]
//  [--max-distance D] [--max-inject D]` (words: the arguments after
//  "playbook-lift"; the last two set the warm searches' playbook_max_distance
//  and playbook_max_inject_distance). Returns the exit code.
int
    lh_lift_command (lh_config_t *config, zlist_t *words);

//  Self test of this class
void
    lh_lift_test (bool verbose);

#ifdef __cplusplus
}
#endif

#endif
